# Runs in the image's chroot after the packages are installed (build.sh, part of the recipe).
# Debian packages no @types/node: give tsc a small ambient declaration of the Node.js globals
# and built-in modules (all typed `any`), found through --typeRoots/--types in runtime.yaml.
mkdir -p /usr/local/lib/rce/typescript/node
{
  cat <<'DTS'
// Minimal Node.js declarations for the rce sandbox (Debian has no @types/node).
declare var process: any;
declare var require: any;
declare var module: any;
declare var exports: any;
declare var global: any;
declare var __dirname: string;
declare var __filename: string;
declare var Buffer: any;
declare type Buffer = any;
declare function setImmediate(callback: (...args: any[]) => void, ...args: any[]): any;
declare function clearImmediate(handle: any): void;
DTS
  for m in assert buffer child_process cluster crypto dgram dns events fs fs/promises http https \
           net os path perf_hooks process querystring readline readline/promises stream \
           stream/promises string_decoder timers timers/promises tty url util v8 vm worker_threads zlib; do
    printf 'declare module "%s";\ndeclare module "node:%s";\n' "$m" "$m"
  done
} > /usr/local/lib/rce/typescript/node/index.d.ts
chmod -R a+rX /usr/local/lib/rce
