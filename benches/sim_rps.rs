//! Throughput of the simulator: concurrent authenticated Power BI calls over loopback for a
//! bounded time, then requests per second.
//!
//! `cargo bench --bench sim_rps -- [SECONDS] [CONCURRENCY]` (defaults 5 and 32).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pbibatch::sim::{Profile, Provision, WorkspaceWants};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let concurrency: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(32);
    let _ = rustls::crypto::ring::default_provider().install_default();

    // The benchmark profile: every operation finishes at once.
    let mut profile = Profile::from_yaml("defaults:\n  duration: 0s\n")?;
    profile.provision(&Provision {
        workspaces: vec![WorkspaceWants {
            name: "Bench".into(),
            datasets: vec!["Model".into()],
            ..WorkspaceWants::default()
        }],
        ..Provision::default()
    });
    let addr: SocketAddr = "127.0.0.1:0".parse()?;
    let sim = pbibatch::sim::start(profile, addr).await?;
    let base = sim.base_url();
    let (ws, ds) = sim.ids("Bench", "Model").ok_or("no dataset")?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let token: serde_json::Value = client
        .post(format!("{base}/{}/oauth2/v2.0/token", sim.tenant_id()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &sim.client_id()),
            ("client_secret", &sim.client_secret()),
            ("scope", "https://analysis.windows.net/powerbi/api/.default"),
        ])
        .send()
        .await?
        .json()
        .await?;
    let token = Arc::new(
        token["access_token"]
            .as_str()
            .ok_or("no token")?
            .to_string(),
    );
    let url = Arc::new(format!(
        "{base}/v1.0/myorg/groups/{ws}/datasets/{ds}/refreshes?$top=5"
    ));
    // One refresh so history has an entry to render.
    client
        .post(format!(
            "{base}/v1.0/myorg/groups/{ws}/datasets/{ds}/refreshes"
        ))
        .bearer_auth(token.as_str())
        .send()
        .await?;

    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        let (done, failed) = (done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match client
                    .get(url.as_str())
                    .bearer_auth(token.as_str())
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = done.load(Ordering::Relaxed);
    println!(
        "sim.rps.c{concurrency} requests={ok} seconds={elapsed:.1} requests_per_s={:.0} failed={}",
        ok as f64 / elapsed,
        failed.load(Ordering::Relaxed)
    );
    sim.shutdown().await;
    Ok(())
}
