//! A clock: notifies `example::notify` at the start of every minute.
//!
//! `cargo run -p clacks-client --example clock` next to a zero-config `clacksd`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clacks_client::{Client, ConnectOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::var("CLACKS_DATA_DIR").unwrap_or_else(|_| "clacks-data".into());
    let (clock, _events) =
        Client::connect(ConnectOptions::from_data_dir(dir)?.client_name("clock")).await?;
    loop {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
        let to_next_minute = 60 - now.as_secs() % 60;
        tokio::time::sleep(Duration::from_secs(to_next_minute)).await;
        clock.notify("example::notify").await?;
    }
}
