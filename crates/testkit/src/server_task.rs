//! The background task behind every server handle: it runs until asked to stop or until the
//! last handle is gone.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A server running on the caller's runtime. Dropping it tells the server to stop.
pub(crate) struct ServerTask {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl ServerTask {
    /// Spawns `run`, which must return soon after its [`StopSignal`] resolves.
    pub(crate) fn spawn<F>(addr: SocketAddr, run: impl FnOnce(StopSignal) -> F) -> ServerTask
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let handle = tokio::spawn(run(StopSignal(stopped)));
        ServerTask {
            addr,
            stop,
            handle: Mutex::new(Some(handle)),
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Tells the server to stop and waits until it has.
    pub(crate) async fn stop(&self) {
        self.stop.send_replace(true);
        let handle = self.handle.lock().expect("server task lock").take();
        if let Some(handle) = handle {
            // A panic inside the server has nothing left to report to once it is stopping.
            let _ = handle.await;
        }
    }
}

/// Resolves once the server should stop: on an explicit stop or when its [`ServerTask`] drops.
pub(crate) struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    pub(crate) async fn requested(&mut self) {
        // An error means the sender is gone, which is a request to stop as well.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
