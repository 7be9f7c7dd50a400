//! The local cluster itself: a hardened Pod runs a locally built image and its log and exit
//! code come back through the API; the pod network has no way off the machine.

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use rce_tests::{pod_log, test_image, wait_terminated, TestNamespace};

/// A Pod with every hardening field the sandbox uses.
fn hardened_pod(name: &str, image: &str, script: &str) -> Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "activeDeadlineSeconds": 60,
            "securityContext": {
                "runAsNonRoot": true, "runAsUser": 123457, "runAsGroup": 123457,
                "seccompProfile": {"type": "RuntimeDefault"}
            },
            "containers": [{
                "name": "main",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["/bin/sh", "-c", script],
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]}
                },
                "resources": {
                    "requests": {"cpu": "50m", "memory": "32Mi"},
                    "limits": {"cpu": "500m", "memory": "32Mi"}
                }
            }]
        }
    }))?)
}

#[tokio::test]
async fn hardened_pod_runs_and_its_log_and_exit_code_come_back() -> Result<()> {
    let ns = TestNamespace::new("rce-basics").await?;
    let pods = ns.api::<Pod>();
    // A Service in the namespace: without enableServiceLinks=false its address would be
    // injected into the Pod's environment as DECOY_SERVICE_HOST.
    let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "decoy"},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "none"}}
    }))?;
    ns.api::<k8s_openapi::api::core::v1::Service>().create(&PostParams::default(), &svc).await?;
    let script = r#"echo "uid=$(id -u)"
if touch /probe 2>/dev/null; then echo rootfs=writable; else echo rootfs=readonly; fi
if [ -e /var/run/secrets/kubernetes.io/serviceaccount/token ]; then echo token=present; else echo token=absent; fi
echo "caps=$(grep CapEff /proc/self/status | tr -d '\t')"
echo "nnp=$(grep NoNewPrivs /proc/self/status | tr -d '\t')"
echo "seccomp=$(grep '^Seccomp:' /proc/self/status | tr -d '\t')"
if env | grep -q DECOY_SERVICE_HOST; then echo services=present; else echo services=absent; fi
exit 3"#;
    pods.create(&PostParams::default(), &hardened_pod("hardened", &test_image()?, script)?).await?;
    let (code, _) = wait_terminated(&pods, "hardened", Duration::from_secs(60)).await?;
    let log = pod_log(&pods, "hardened").await?;
    ns.cleanup().await?;
    assert_eq!(code, 3, "exit code, log:\n{log}");
    for want in [
        "uid=123457",
        "rootfs=readonly",
        "token=absent",
        "caps=CapEff:0000000000000000",
        "nnp=NoNewPrivs:1",
        "seccomp=Seccomp:2",
        "services=absent",
    ] {
        assert!(log.lines().any(|l| l == want), "missing {want:?} in log:\n{log}");
    }
    Ok(())
}

#[tokio::test]
async fn pod_cannot_reach_a_host_loopback_listener_and_has_no_default_route() -> Result<()> {
    // A listener of our own on the host's loopback; count what reaches it.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    listener.set_nonblocking(true)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let acceptor = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            if let Ok((mut s, _)) = listener.accept() {
                let mut b = [0u8; 16];
                let _ = s.read(&mut b);
                counter.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    // Positive control: the listener does accept connections from the host itself.
    drop(std::net::TcpStream::connect(("127.0.0.1", port))?);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(accepted.load(Ordering::Relaxed), 1, "the host itself reaches the listener");

    let ns = TestNamespace::new("rce-net").await?;
    let pods = ns.api::<Pod>();
    let script = format!(
        r#"echo routes:; cat /proc/net/route
if grep -qE '^[^[:space:]]+[[:space:]]+00000000[[:space:]]' /proc/net/route; then echo default-route=present; else echo default-route=absent; fi
if echo hi | nc -w 2 127.0.0.1 {port}; then echo loopback=connected; else echo loopback=failed; fi
exit 0"#
    );
    pods.create(&PostParams::default(), &hardened_pod("netprobe", &test_image()?, &script)?).await?;
    let (code, _) = wait_terminated(&pods, "netprobe", Duration::from_secs(60)).await?;
    let log = pod_log(&pods, "netprobe").await?;
    ns.cleanup().await?;
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let _ = acceptor.join();
    assert_eq!(code, 0, "log:\n{log}");
    assert!(log.contains("default-route=absent"), "pod has a default route:\n{log}");
    assert!(log.contains("loopback=failed"), "pod reached 127.0.0.1:{port}:\n{log}");
    assert_eq!(accepted.load(Ordering::Relaxed), 1, "a connection from the pod reached the host listener");
    Ok(())
}
