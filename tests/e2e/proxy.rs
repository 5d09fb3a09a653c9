//! A TCP forwarder between outflow and a test server, to simulate network
//! failures without touching the shared servers (other tests use them in
//! parallel): [`Proxy::cut_at`] ends every open connection at once, as a
//! broken network or a restarting server would, when the bytes sent by the
//! server reach a given total, so a cut lands in the middle of a large
//! transaction deterministically, or at once ([`Proxy::cut_now`]). New
//! connections are accepted again right away.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

struct Shared {
    target: String,
    /// Cancelled to end the open connections; replaced by a fresh one.
    current: Mutex<CancellationToken>,
    /// Bytes forwarded from the server to the client, over all connections.
    from_server: AtomicU64,
    /// Cut once `from_server` reaches this (0: never).
    cut_at: AtomicU64,
    cuts: AtomicU64,
}

impl Shared {
    fn token(&self) -> CancellationToken {
        self.current.lock().unwrap().clone()
    }

    fn cut(&self) {
        let old = std::mem::take(&mut *self.current.lock().unwrap());
        old.cancel();
        self.cuts.fetch_add(1, Ordering::SeqCst);
    }
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `target` (`host:port`).
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the proxy");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            target: target.to_string(),
            current: Mutex::new(CancellationToken::new()),
            from_server: AtomicU64::new(0),
            cut_at: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
        });
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let shared = accepting.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&shared.target).await {
                        forward(client, server, shared).await;
                    }
                });
            }
        });
        Proxy { port, shared, accept }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Bytes the server has sent through the proxy so far.
    pub fn bytes_from_server(&self) -> u64 {
        self.shared.from_server.load(Ordering::SeqCst)
    }

    /// Ends every open connection once the server has sent `total` bytes
    /// through the proxy (counted since it started).
    pub fn cut_at(&self, total: u64) {
        self.shared.cut_at.store(total, Ordering::SeqCst);
    }

    /// Ends every open connection now (the next ones are accepted again).
    pub fn cut_now(&self) {
        self.shared.cut();
    }

    /// How many cuts happened.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.shared.token().cancel();
    }
}

async fn forward(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let token = shared.token();
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    // Forward only up to the cut point, then cut.
                    let limit = shared.cut_at.load(Ordering::SeqCst);
                    let before = shared.from_server.load(Ordering::SeqCst);
                    let n = if limit > before && before + n as u64 >= limit { (limit - before) as usize } else { n };
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    let total = shared.from_server.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                    if limit > 0 && total >= limit && shared.cut_at.swap(0, Ordering::SeqCst) == limit {
                        shared.cut();
                        return;
                    }
                }
            }
        }
    };
    // Whichever ends first ends the connection: dropping both halves closes
    // the sockets on both sides.
    tokio::select! {
        _ = token.cancelled() => {}
        _ = up => {}
        _ = down => {}
    }
}
