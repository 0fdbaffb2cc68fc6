//! A chat client: every line typed is sent to everyone listening to `example::chat`.
//!
//! Run a zero-config `clacksd` in the project directory, then in two terminals:
//! `cargo run -p clacks-client --example chat` (set `CLACKS_DATA_DIR` for another data dir).

use clacks_client::{Client, ConnectOptions, Event};
use tokio::io::AsyncBufReadExt;

const CHAT: &str = "example::chat";
const CLOCK: &str = "example::notify";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::var("CLACKS_DATA_DIR").unwrap_or_else(|_| "clacks-data".into());
    let opts = ConnectOptions::from_data_dir(dir)?.client_name("chatclient");
    let (chat, mut events) = Client::connect(opts).await?;
    chat.listen(CHAT).await?;
    chat.listen(CLOCK).await?;
    let mut input = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = input.next_line() => match line? {
                Some(line) if line.eq_ignore_ascii_case("quit") || line.eq_ignore_ascii_case("exit") => break,
                Some(line) if !line.is_empty() => chat.set(CHAT, &line).await?,
                Some(_) => {}
                None => break,
            },
            event = events.next() => match event {
                Some(Event::Set { name, value }) if name == CHAT => println!(">>> {value}"),
                Some(Event::Notify { name }) if name == CLOCK => println!("*** Another minute has passed ***"),
                Some(Event::Disconnected { reason }) => println!("+++ Disconnected ({reason}), reconnecting"),
                Some(Event::Reconnected) => println!("+++ Reconnected"),
                Some(_) => {}
                None => break,
            },
        }
    }
    chat.disconnect().await?;
    Ok(())
}
