//! A chat client: every line typed is sent to everyone listening to `example::chat`.
//!
//! Run a zero-config `clacksd` in the project directory, then in two terminals:
//! `cargo run -p clacks-client --example chat` (or point `CLACKS_URL`, `CLACKS_DATA_DIR`, … at
//! another server, see `ConnectOptions::from_env`).

use clacks_client::{Client, ClientError, ConnectOptions, Event};
use tokio::io::AsyncBufReadExt;

const CHAT: &str = "example::chat";
const CLOCK: &str = "example::notify";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let opts = ConnectOptions::from_env()?.client_name("chatclient");
    let (client, mut events) = Client::connect(opts).await?;
    // Each subscription is its own stream of one name's signals.
    let mut chat = client.subscribe(CHAT).await?;
    let mut clock = client.subscribe(CLOCK).await?;
    // Lines we send wait for the server's verdict.
    let sender = client.confirmed();
    let mut input = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = input.next_line() => match line? {
                Some(line) if line.eq_ignore_ascii_case("quit") || line.eq_ignore_ascii_case("exit") => break,
                Some(line) if !line.is_empty() => match sender.set(CHAT, &line).await {
                    Ok(()) => {}
                    Err(e) if e.is_refused() => println!("+++ The server refused: {e}"),
                    Err(e @ ClientError::OutcomeUnknown { .. }) => println!("+++ Maybe not sent: {e}"),
                    Err(e) if e.is_disconnect() || e.is_timeout() => println!("+++ Not sent: {e}"),
                    Err(e) => return Err(e.into()),
                },
                Some(_) => {}
                None => break,
            },
            Some(event) = chat.next() => match event {
                Event::Set { value, .. } => println!(">>> {value}"),
                Event::Lagged(n) => println!("+++ {n} lines missed"),
                _ => {}
            },
            Some(_) = clock.next() => println!("*** Another minute has passed ***"),
            event = events.next() => match event {
                Some(Event::Disconnected { reason }) => println!("+++ Disconnected ({reason}), reconnecting"),
                Some(Event::Reconnected) => println!("+++ Reconnected"),
                Some(_) => {}
                None => break,
            },
        }
    }
    client.disconnect().await?;
    Ok(())
}
