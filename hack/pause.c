/* The pod sandbox's infra process: sleeps until told to stop, reaps orphans.
 * Same behaviour as Kubernetes' build/pause/linux/pause.c, written here so the
 * image builds without the Kubernetes source tree. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
  if (getpid() != 1) fprintf(stderr, "pause: warning: not PID 1\n");
  struct sigaction s = {0};
  s.sa_handler = stop;
  sigaction(SIGINT, &s, NULL);
  sigaction(SIGTERM, &s, NULL);
  s.sa_handler = reap;
  s.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &s, NULL);
  for (;;) pause();
  return 1;
}
