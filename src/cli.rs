//! The command line: argument parsing and dispatch.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::fixture;
use crate::plex::TriggerForm;

/// Reclaim the disk space Plex Media Server spends on images it no longer needs.
#[derive(Debug, Parser)]
#[command(name = "tidyplex", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command understands.
#[derive(Debug, Args)]
pub struct Global {
    /// The "Plex Media Server" data folder [default: the first known location that exists]
    #[arg(long, global = true, env = "TIDYPLEX_PLEX_DIR", value_name = "DIR")]
    pub plex_dir: Option<PathBuf>,
    /// The library database [default: <plex-dir>/Plug-in Support/Databases/com.plexapp.plugins.library.db]
    #[arg(long, global = true, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// When to use colours
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// More log output (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set
    Auto,
    /// Always colour
    Always,
    /// Never colour
    Never,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a realistic synthetic Plex data folder (for tests, demos and benchmarks)
    Fixture(FixtureArgs),
}

/// `tidyplex fixture`.
#[derive(Debug, Args)]
pub struct FixtureArgs {
    /// Folder to create (must not exist or be empty)
    pub dir: PathBuf,
    /// small (a few hundred files), large (about a million) or a number of movies
    #[arg(long, default_value = "small", value_parser = parse_scale)]
    pub scale: fixture::Scale,
    /// Form of the FTS update triggers on metadata_items
    #[arg(long, value_enum, default_value_t = TriggerForm::Scoped)]
    pub triggers: TriggerForm,
    /// Lay `_combined` out as copies, as Plex does on Windows
    #[arg(long)]
    pub windows: bool,
    /// Seed of the generator: the same seed builds the same folder
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Plex schema to write (1.42 lacks user_square_art_url)
    #[arg(long, value_enum, default_value = "1.43")]
    pub schema: fixture::SchemaVersion,
    /// Print what was built as JSON
    #[arg(long)]
    pub json: bool,
}

fn parse_scale(s: &str) -> Result<fixture::Scale, String> {
    s.parse()
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            1
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Fixture(args) => {
            let opts = fixture::Options {
                scale: args.scale,
                triggers: args.triggers,
                windows: args.windows,
                seed: args.seed,
                schema: args.schema,
            };
            let report = fixture::build(&args.dir, &opts)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", report.summary());
            }
            Ok(0)
        }
    }
}
