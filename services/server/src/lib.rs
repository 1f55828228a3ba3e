//! The omniroute server: settings, the gRPC API and the application that ties
//! them to a store. The binary (`src/main.rs`) only parses the command line,
//! installs logging and waits for a shutdown signal.

pub mod api;
pub mod app;
pub mod auth;
pub mod channels;
pub mod cli;
pub mod deliveries;
pub mod http;
pub mod metrics;
pub mod net;
pub mod pipeline;
pub mod providers;
pub mod routing;
pub mod scrape;
pub mod server;
pub mod settings;
pub mod telemetry;
pub mod tls;
pub mod webhooks;

pub use server::Application;
pub use settings::Settings;
