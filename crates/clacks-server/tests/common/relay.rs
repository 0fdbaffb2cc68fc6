//! A Unix-socket relay between a slave and its master that a test can cut, pause and hold.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};

/// A Unix-socket relay between a slave and its master that the test can cut, pause and restore.
pub struct Relay {
    pub path: PathBuf,
    pub cut: Arc<AtomicBool>,
    pub paused: Arc<AtomicBool>,
    /// Holds both directions (a master that is paused as a whole).
    pub held: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    _dir: tempfile::TempDir,
}

impl Relay {
    pub async fn start(target: PathBuf) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let (c, p, h, g) = (
            cut.clone(),
            paused.clone(),
            held.clone(),
            generation.clone(),
        );
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(up) = UnixStream::connect(&target).await else {
                    continue;
                };
                let (p, h, mut gen) = (p.clone(), h.clone(), g.subscribe());
                tokio::spawn(async move {
                    let (mut dr, mut dw) = down.into_split();
                    let (mut ur, mut uw) = up.into_split();
                    let to_master = async {
                        let mut buf = vec![0u8; 65536];
                        loop {
                            while h.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            let n = tokio::io::AsyncReadExt::read(&mut dr, &mut buf).await?;
                            if n == 0 {
                                return Ok::<(), std::io::Error>(());
                            }
                            // What was read as the hold began waits too.
                            while h.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            tokio::io::AsyncWriteExt::write_all(&mut uw, &buf[..n]).await?;
                        }
                    };
                    let to_slave = async {
                        let mut buf = vec![0u8; 65536];
                        loop {
                            while p.load(Ordering::SeqCst) || h.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            let n = tokio::io::AsyncReadExt::read(&mut ur, &mut buf).await?;
                            if n == 0 {
                                return Ok::<(), std::io::Error>(());
                            }
                            while h.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            tokio::io::AsyncWriteExt::write_all(&mut dw, &buf[..n]).await?;
                        }
                    };
                    tokio::select! {
                        _ = to_master => {}
                        _ = to_slave => {}
                        _ = gen.changed() => {}
                    }
                });
            }
        });
        Relay {
            path,
            cut,
            paused,
            held,
            generation,
            _dir: dir,
        }
    }

    /// Closes the current link and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.paused.store(false, Ordering::SeqCst);
    }
}
