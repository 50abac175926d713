//! `crypto-etl plugin ...`

use std::path::PathBuf;

use clap::{Args, Subcommand};
use crypto_etl::plugin::{ACCEPTED_INTERFACES, TransformPlugin};

use super::{Code, Failure, RuntimeArgs};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Load a plugin component in the sandbox and show who it says it is and its sha256
    /// (what a pipeline manifest needs).
    #[command(
        after_help = "Example:\n  crypto-etl plugin inspect target/wasm32-wasip2/release/price_range.wasm"
    )]
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The plugin component (.wasm).
    wasm: PathBuf,

    #[command(flatten)]
    runtime: RuntimeArgs,
}

pub fn run(command: PluginCommand) -> Result<(), Failure> {
    match command {
        PluginCommand::Inspect(args) => inspect(args),
    }
}

fn inspect(args: InspectArgs) -> Result<(), Failure> {
    let bytes = std::fs::read(&args.wasm).map_err(|e| {
        Failure::new(Code::BadInput, format!("could not read {}: {e}", args.wasm.display()))
    })?;
    let runtime = args.runtime.runtime()?;
    let plugin = runtime
        .load(&bytes, &args.wasm.display().to_string())
        .map_err(|e| Failure::new(Code::Pipeline, e.to_string()))?;
    let info = plugin.info();
    println!("name         {}", info.name);
    println!("version      {}", info.version);
    println!("description  {}", info.description);
    println!("interface    crypto-etl:plugin {}", ACCEPTED_INTERFACES[0]);
    println!("sha256       {}", plugin.sha256());
    Ok(())
}
