//! `squall serve`: sensors, trigger bus, rules, executions and the API in one process.

use super::local::{engine, load, Failure};
use super::{Cli, ExitCode};
use squall_server::api::auth::Tokens;
use squall_server::service::Service;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Address used when neither `--listen` nor `listen:` in squall.yaml says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9101";

/// `squall serve` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (default: `listen` from squall.yaml, else 127.0.0.1:9101).
    #[arg(long)]
    pub listen: Option<String>,
    /// Seconds running executions get to finish at shutdown before they are canceled.
    #[arg(long, default_value_t = 30)]
    pub grace: u64,
    /// Do not reload content when files under the root change.
    #[arg(long)]
    pub no_watch: bool,
}

/// Run the service until SIGINT/SIGTERM.
pub async fn run(cli: &Cli, args: &ServeArgs) -> Result<ExitCode, Failure> {
    let content = load(cli)?;
    let settings = content.settings.clone();
    let tokens = match settings.auth.as_ref().and_then(|a| a.tokens_file.as_ref()) {
        Some(f) => Tokens::load(&content.root.join(squall_core::content::expand_home(f)))?,
        None => Tokens::default(),
    };
    let wanted = args
        .listen
        .clone()
        .or(settings.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let mut addr: SocketAddr = wanted.parse().map_err(|e| {
        Failure::Usage(format!(
            "listen address {wanted:?} is not host:port ({e}); for example 127.0.0.1:9101"
        ))
    })?;
    if !tokens.enabled() && !addr.ip().is_loopback() {
        eprintln!(
            "warning: no API tokens are configured (auth.tokens_file in squall.yaml), so Squall listens on loopback only: 127.0.0.1:{} instead of {wanted}",
            addr.port()
        );
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    } else if !tokens.enabled() {
        eprintln!(
            "note: no API tokens are configured; the API is open to local users only (loopback)"
        );
    }
    let engine = engine(cli, content)?;
    engine.set_workers(
        settings
            .workers
            .unwrap_or(squall_runtime::executions::DEFAULT_WORKERS),
    );
    let data_dir = engine.store().dir().to_path_buf();
    let service = Service::start(engine, squall_server::components(), tokens, true).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::Failed(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::Failed(e.to_string()))?;
    eprintln!(
        "squall serving on http://{bound} (content {}, data {})",
        service.root.display(),
        data_dir.display()
    );
    tracing::info!(listen = %bound, "serving");
    let _watcher = if args.no_watch {
        None
    } else {
        watch(service.clone(), &data_dir)
    };
    let app = squall_server::api::router(service.clone());
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let mut server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await
    });
    tokio::select! {
        r = &mut server => {
            // The server ended by itself: an error.
            let msg = match r {
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(())) => "stopped unexpectedly".to_string(),
                Err(e) => e.to_string(),
            };
            return Err(Failure::Failed(format!("server error: {msg}")));
        }
        _ = shutdown_signal() => {}
    }
    eprintln!(
        "squall: shutting down; waiting up to {}s for running executions",
        args.grace
    );
    // New requests are refused at once; open streams (execution tail) end when their
    // executions do, which the drain below bounds by the grace period.
    stop.cancel();
    service.shutdown(Duration::from_secs(args.grace)).await;
    if tokio::time::timeout(Duration::from_secs(2), &mut server)
        .await
        .is_err()
    {
        server.abort();
    }
    Ok(0)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Reload content when a file under the root changes (debounced; the data dir is ignored).
fn watch(service: Arc<Service>, data_dir: &Path) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let data_dir = data_dir.to_path_buf();
    let mut watcher = match notify::recommended_watcher(
        move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                // Content files, and new folders (a new pack's files may be written
                // before the watch on its folder is in place).
                let relevant = ev.paths.iter().any(|p| {
                    !p.starts_with(&data_dir)
                        && (matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("yaml" | "yml" | "rhai" | "sh" | "py" | "json")
                        ) || (ev.kind.is_create() && p.is_dir()))
                });
                if relevant && !ev.kind.is_access() {
                    let _ = tx.send(());
                }
            }
        },
    ) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the content root; use `squall reload` after changes");
            return None;
        }
    };
    if let Err(e) = watcher.watch(&service.root, RecursiveMode::Recursive) {
        tracing::warn!(error = %e, "cannot watch the content root; use `squall reload` after changes");
        return None;
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Let a burst of writes (an editor saving, a git checkout) settle.
            tokio::time::sleep(Duration::from_millis(300)).await;
            while rx.try_recv().is_ok() {}
            let _ = service.reload().await;
        }
    });
    Some(watcher)
}
