//! A chatbot: repeats chat lines mentioning "simon" as "RoboSimon says: …", counts chat lines in
//! the cache (`chatbot::linecount`) and reports the count every minute on the clock's signal.
//!
//! `cargo run -p clacks-client --example chatbot` next to a zero-config `clacksd`, with the
//! `chat` and `clock` examples.

use clacks_client::{Client, ConnectOptions, Event};

const CHAT: &str = "example::chat";
const CLOCK: &str = "example::notify";
const COUNT: &str = "chatbot::linecount";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::var("CLACKS_DATA_DIR").unwrap_or_else(|_| "clacks-data".into());
    let (bot, mut events) =
        Client::connect(ConnectOptions::from_data_dir(dir)?.client_name("chatbot")).await?;
    bot.listen(CHAT).await?;
    bot.listen(CLOCK).await?;
    while let Some(event) = events.next().await {
        match event {
            Event::Set { name, value, .. } if name == CHAT => {
                bot.increment(COUNT, None).await?;
                if value.to_lowercase().contains("simon") {
                    bot.set(CHAT, &format!("RoboSimon says: {value}")).await?;
                    bot.increment(COUNT, None).await?;
                }
            }
            Event::Notify { name } if name == CLOCK => {
                let seen: f64 = bot
                    .retrieve(COUNT)
                    .await?
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0);
                if seen > 0.0 {
                    bot.set(CHAT, &format!("{seen} chat lines in the last minute"))
                        .await?;
                    bot.decrement(COUNT, Some(seen)).await?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}
