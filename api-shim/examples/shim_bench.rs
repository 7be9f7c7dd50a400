//! Load generator for the shim alone (a benchmark, not a test): `GET /api/status/{id}`
//! requests/s and latency under concurrent load, and POST → Execution-created latency.
//! Sends traffic only to the given loopback URL; bounded in count and time.
//!
//! cargo run --release -p rce-api-shim --example shim_bench -- [--url http://127.0.0.1:8080]
//!     [--seconds 10] [--concurrency 32] [--creates 30]
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn send(c: &HttpClient, method: &str, url: &str, body: Option<&str>) -> anyhow::Result<(u16, String)> {
    let mut b = http::Request::builder().method(method).uri(url);
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let resp = c.request(b.body(Full::new(Bytes::from(body.unwrap_or("").to_string())))?).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let default_url = std::env::var("RCE_API").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let url = arg("--url", &default_url);
    let host = url.trim_start_matches("http://").split('/').next().unwrap_or("");
    anyhow::ensure!(
        host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]"),
        "refusing to load anything but a loopback address: {url}"
    );
    let seconds: u64 = arg("--seconds", "10").parse()?;
    let concurrency: usize = arg("--concurrency", "32").parse()?;
    let creates: usize = arg("--creates", "30").parse()?;
    let client: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build_http();

    // One finished job, so that status reads are served from the Redis mirror.
    let (code, body) = send(
        &client,
        "POST",
        &format!("{url}/api/execute"),
        Some(r#"{"language":"python","code":"print(1)"}"#),
    )
    .await?;
    anyhow::ensure!(code == 200, "POST /api/execute: {code} {body}");
    let id = serde_json::from_str::<serde_json::Value>(&body)?["jobId"].as_str().unwrap_or("").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, s) = send(&client, "GET", &format!("{url}/api/status/{id}"), None).await?;
        if s.contains("\"Completed\"") || s.contains("\"Failed\"") {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "job {id} did not finish in 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // GET /api/status under load.
    let status_url = format!("{url}/api/status/{id}");
    let end = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let c = client.clone();
            let u = status_url.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0usize;
                while Instant::now() < end {
                    let t = Instant::now();
                    match send(&c, "GET", &u, None).await {
                        Ok((200, _)) => lat.push(t.elapsed()),
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await?;
        lat.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "shim GET /api/status: {} requests in {:.1} s with {} connections = {:.0} req/s; p50 {:.2} ms, p99 {:.2} ms; {} errors",
        lat.len(),
        elapsed,
        concurrency,
        lat.len() as f64 / elapsed,
        pct(&lat, 0.50).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
        errors
    );

    // POST → Execution created (the 200 comes once the apiserver has stored it), sequential.
    let mut lat = Vec::new();
    for _ in 0..creates {
        let t = Instant::now();
        let (code, body) = send(
            &client,
            "POST",
            &format!("{url}/api/execute"),
            Some(r#"{"language":"bash","code":"true"}"#),
        )
        .await?;
        if code == 200 {
            lat.push(t.elapsed());
        } else {
            eprintln!("POST /api/execute: {code} {body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lat.sort();
    println!(
        "shim POST /api/execute → Execution created: n={} p50 {:.1} ms, p99 {:.1} ms",
        lat.len(),
        pct(&lat, 0.50).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3
    );
    Ok(())
}
