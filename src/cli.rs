//! The command line: argument parsing and dispatch.

use std::path::{Path, PathBuf};

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::ProgressBar;

use crate::changeset::policy::CachePolicy;
use crate::changeset::Changeset;
use crate::fixture;
use crate::plex::api::{self, Maintenance};
use crate::plex::db::Db;
use crate::plex::locate::{self, PlexPaths};
use crate::plex::model::Library;
use crate::plex::TriggerForm;
use crate::spec::{HostKind, Overrides, Spec};
use crate::{apply, demo, scan};
use crate::{render, status};

/// Reclaim the disk space Plex Media Server spends on images it no longer needs.
#[derive(Debug, Parser)]
#[command(name = "tidyplex", version, about, max_term_width = 100)]
pub struct Cli {
    /// Options every command understands.
    #[command(flatten)]
    pub global: Global,
    /// The command to run.
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
    /// Plex's own SQLite build, for writing DBs whose FTS triggers fire on every column
    #[arg(long, global = true, value_name = "FILE")]
    pub plex_sqlite: Option<PathBuf>,
    /// The Plex server's address (its token comes from TIDYPLEX_PLEX_TOKEN or Preferences.xml)
    #[arg(long, global = true, env = "TIDYPLEX_PLEX_URL", default_value = api::DEFAULT_URL, value_name = "URL")]
    pub plex_url: String,
    /// Seconds to wait for Plex to answer a call
    #[arg(
        long,
        global = true,
        env = "TIDYPLEX_PLEX_TIMEOUT",
        default_value_t = 30.0,
        value_name = "SECONDS"
    )]
    pub plex_timeout: f64,
    /// When to use colours
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// More log output (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Threads that read folders and plan [default: the cores, and at least 8: a read mostly
    /// waits on the disk, so more reads in flight finish a cold walk sooner]
    #[arg(short = 'j', long, global = true, env = "TIDYPLEX_THREADS", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

/// The fewest threads the pool has by default: on a cold cache a walk is bound by the disk's
/// latency, and 8 reads in flight made a plan of the large fixture 3.3× faster than 2.
const MIN_THREADS: usize = 8;

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
    /// List the library sections: id, name, type, agent, items, image columns still local
    Sections(SectionsArgs),
    /// Disk use per area and, per section and column, how far the library is from clean
    Status(StatusArgs),
    /// Plan a cleanup: read the DB and the folders, print the changes, optionally save them
    Plan(PlanArgs),
    /// Render a saved changeset (YAML or JSON) as a diff
    Show(ShowArgs),
    /// Show what changed between two changesets
    Diff(DiffArgs),
    /// Execute a changeset: re-check each change, write the URLs, then delete the files
    Apply(ApplyArgs),
    /// Plan and apply a SPEC in rounds until nothing is left (for cron or a systemd timer)
    Run(RunArgs),
    /// List the applies: when, what they wrote and removed, how long their trash is kept
    History(HistoryArgs),
    /// Put back what an apply changed: its kept files, then the columns still as it left them
    Undo(UndoArgs),
    /// Empty the trash that `apply --keep` fills [default: what has outlived its keep]
    Purge(PurgeArgs),
    /// Run Plex's own maintenance and wait for it (order: empty-trash, clean-bundles, optimize)
    Plex(PlexArgs),
    /// Publish a `dir` image host's folder over HTTP (GET /i/<blake3>.<ext>) for Plex to fetch
    Serve(ServeArgs),
    /// See a saved changeset in a browser: per item what stays and what goes, as thumbnails
    Review(ReviewArgs),
    /// Build a sample library and walk plan → show → apply → plan on it
    Demo(DemoArgs),
    /// Build a realistic synthetic Plex data folder (for tests, demos and benchmarks)
    Fixture(FixtureArgs),
}

/// `tidyplex sections`.
#[derive(Debug, Args)]
pub struct SectionsArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `tidyplex status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this section (repeat for more) [default: all]
    #[arg(long = "section", value_name = "ID")]
    pub sections: Vec<i64>,
    /// Print JSON instead of tables
    #[arg(long)]
    pub json: bool,
}

/// `tidyplex plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A SPEC file stating sections, stages, bundles, cache and image host (see plans/)
    pub spec: Option<PathBuf>,
    /// Only this section (repeat for more) [default: the SPEC's, else every movie/show/music section]
    #[arg(long = "section", value_name = "ID")]
    pub sections: Vec<i64>,
    /// Cleanup stage for every section (1–4, cumulative) [default: the SPEC's, else 1]
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=4))]
    pub stage: Option<u8>,
    /// Bundle cleanup step (1–3, cumulative): orphan bundles, + season/episode bundles, + unused files in live bundles
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub bundles: Option<u8>,
    /// PhotoTranscoder cache: all, max-size=SIZE (e.g. 20GiB) or older-than=AGE (e.g. 30d)
    #[arg(long, value_name = "POLICY")]
    pub cache: Option<CachePolicy>,
    /// Write the changeset to FILE (YAML, or JSON with --json); `-` writes it to stdout and
    /// prints nothing else there
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print (and write) the changeset as JSON instead of the diff
    #[arg(long)]
    pub json: bool,
    /// On a terminal, print every change even when there are more than 1,000 lines of them
    #[arg(long)]
    pub full: bool,
    /// Exit 2 when there are changes, 0 when there are none
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also ask Plex to refresh or analyze the items whose images only Plex can bring back
    #[arg(long)]
    pub repair: bool,
    /// Stage-4 image host; discord needs only $TIDYPLEX_DISCORD_WEBHOOK at apply time, http-put
    /// and dir need their settings in the SPEC [default: the SPEC's image_host]
    #[arg(long, value_enum, value_name = "KIND")]
    pub image_host: Option<HostKind>,
}

/// `tidyplex plex`.
#[derive(Debug, Args)]
pub struct PlexArgs {
    /// What to run; several run in Plex's recommended order whatever order they are given in
    #[arg(required = true, value_enum)]
    pub actions: Vec<Maintenance>,
    /// empty-trash: only this section (repeat for more) [default: every section]
    #[arg(long = "section", value_name = "ID")]
    pub sections: Vec<i64>,
    /// Seconds to wait for each operation to finish
    #[arg(long, default_value_t = 3600.0, value_name = "SECONDS")]
    pub wait: f64,
}

/// `tidyplex serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A SPEC whose image_host is `dir`: its `path` is served
    pub spec: Option<PathBuf>,
    /// The image folder (a `dir` image host's `path`) [default: the SPEC's]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Address to listen on (the SPEC's public_url must reach it: http://ADDR/i)
    #[arg(long, default_value = "127.0.0.1:8181", value_name = "ADDR")]
    pub bind: String,
}

/// `tidyplex review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The changeset (YAML or JSON, format 1 or 2)
    pub file: PathBuf,
    /// Address to listen on; anything but loopback lets other machines see your library
    #[arg(long, default_value = "127.0.0.1:8182", value_name = "ADDR")]
    pub bind: String,
    /// Open the page in the default browser
    #[arg(long)]
    pub open: bool,
}

/// Options shared by `apply` and `run`.
#[derive(Debug, Args)]
pub struct ApplyOpts {
    /// Rows per DB transaction
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch: u64,
    /// Refuse the whole changeset when anything drifted since planning
    #[arg(long)]
    pub strict: bool,
    /// Seconds to keep retrying while Plex holds the DB lock, before deferring the rest
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub lock_wait: f64,
    /// Where to keep DB backups [default: tidyplex-backups beside the Databases folder]
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Change nothing (exit 3) while Plex plays something or scans; for nightly timers
    #[arg(long)]
    pub when_idle: bool,
    /// Move what goes into tidyplex's trash and keep it this long (e.g. 7d), so `undo` can
    /// put it back [default: the SPEC's keep, else delete]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub keep: Option<Duration>,
}

/// `tidyplex history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `tidyplex undo`.
#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The apply to undo, as `history` numbers it [default: the last]
    pub id: Option<u64>,
    /// Undo without asking
    #[arg(short, long)]
    pub yes: bool,
    /// Seconds to keep retrying while Plex holds the DB lock, before deferring the rest
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub lock_wait: f64,
    /// Where to keep DB backups [default: tidyplex-backups beside the Databases folder]
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// `tidyplex purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Empty the trash of applies that started longer ago than this (e.g. 3d)
    #[arg(long, value_name = "AGE", value_parser = parse_duration, conflicts_with = "all")]
    pub older_than: Option<Duration>,
    /// Empty the whole trash (nothing can be undone with its files afterwards)
    #[arg(long)]
    pub all: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 7d, 12h)"))
}

/// `tidyplex apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The changeset (YAML or JSON) written by `plan -o`
    pub file: PathBuf,
    /// The SPEC the changeset was planned from, for its image host's settings (uploads to
    /// http-put or dir need them; discord works without)
    #[arg(long, value_name = "SPEC")]
    pub spec: Option<PathBuf>,
    /// Apply without asking
    #[arg(short, long)]
    pub yes: bool,
    /// How to apply.
    #[command(flatten)]
    pub opts: ApplyOpts,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// `tidyplex run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The SPEC file (see plans/)
    pub spec: PathBuf,
    /// Give up after this many plan/apply rounds
    #[arg(long, default_value_t = 5)]
    pub max_rounds: u32,
    /// How to apply.
    #[command(flatten)]
    pub opts: ApplyOpts,
}

/// `tidyplex demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to build the sample library [default: a temporary folder, removed afterwards]
    pub dir: Option<PathBuf>,
}

/// `tidyplex show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The changeset (YAML or JSON, format 1 or 2)
    pub file: PathBuf,
    /// Print it as JSON (format 2)
    #[arg(long)]
    pub json: bool,
    /// Print the one-screen summary only: per section, per area, the items that free most
    #[arg(long)]
    pub summary: bool,
    /// Only the changes of this section (repeat for more)
    #[arg(long = "section", value_name = "ID")]
    pub sections: Vec<i64>,
    /// Only the changes of this item (repeat for more)
    #[arg(long = "item", value_name = "ID")]
    pub items: Vec<i64>,
}

/// `tidyplex diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older changeset
    pub old: PathBuf,
    /// The newer changeset
    pub new: PathBuf,
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
    /// Lay `_combined` out as hard links, as Plex does on Windows
    #[arg(long)]
    pub windows: bool,
    /// Make every `_combined` symlink absolute under this path, as a Docker container
    /// sees the plex dir (e.g. "/config/Library/Application Support/Plex Media Server")
    #[arg(long, value_name = "PATH", conflicts_with = "windows")]
    pub link_root: Option<String>,
    /// Write a DB from before Plex's ICU tokenizer: plain FTS tables
    #[arg(long)]
    pub pre_icu: bool,
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

/// Runs the command line and returns the process exit code: 0 success, 1 error.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    init_output(&cli.global);
    init_threads(cli.global.threads);
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            let _ = writeln!(anstream::stderr(), "{ERROR}error:{ERROR:#} {err:#}");
            1
        }
    }
}

const ERROR: anstyle::Style = anstyle::AnsiColor::Red.on_default().bold();

/// Sizes the pool every parallel step runs on: `--threads`, else the cores and at least
/// [`MIN_THREADS`].
fn init_threads(threads: Option<u16>) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = threads.map_or(cores.max(MIN_THREADS), usize::from);
    // Fails only when a global pool exists already; none is built before this, and if one
    // were, it would serve.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
}

/// Applies `--color` and the log level of `-v`/`-q`.
fn init_output(global: &Global) {
    match global.color {
        ColorChoice::Auto => {}
        ColorChoice::Always => anstream::ColorChoice::Always.write_global(),
        ColorChoice::Never => anstream::ColorChoice::Never.write_global(),
    }
    let level = match (global.quiet, global.verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::WARN,
        (false, 1) => tracing::Level::INFO,
        (false, 2) => tracing::Level::DEBUG,
        (false, _) => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(anstream::stderr().current_choice() != anstream::ColorChoice::Never)
        .without_time()
        .with_target(false)
        .try_init();
}

fn run(cli: Cli) -> Result<i32> {
    let global = &cli.global;
    match cli.command {
        Command::Sections(args) => {
            let (_, db) = open(global)?;
            let lib = Library::read(&db)?;
            let list = status::sections(&db, &lib);
            if args.json {
                print_json(&list)?;
            } else {
                print(&render::status::sections(&list))?;
            }
            Ok(0)
        }
        Command::Status(args) => {
            let (paths, db) = open(global)?;
            let progress = spinner(global, "measuring");
            let st = status::gather(&paths, &db, &args.sections, &|n| {
                progress.set_message(format!("measuring: {} files", render::count(n)))
            })?;
            progress.finish_and_clear();
            if args.json {
                print_json(&st)?;
            } else {
                print(&render::status::status(&st))?;
            }
            Ok(0)
        }
        Command::Plan(args) => plan(global, args),
        Command::Apply(args) => apply_cmd(global, args),
        Command::Run(args) => run_cmd(global, args),
        Command::History(args) => history_cmd(global, args),
        Command::Undo(args) => undo_cmd(global, args),
        Command::Purge(args) => purge_cmd(global, args),
        Command::Plex(args) => plex_cmd(global, args),
        Command::Serve(args) => {
            let dir = serve_dir(&args)?;
            crate::serve::serve(&dir, &args.bind, |addr| {
                let _ = print(&format!(
                    "Serving {} at http://{addr}/i/<blake3>.<ext> (Ctrl-C stops)\n",
                    dir.display()
                ));
            })?;
            Ok(0)
        }
        Command::Review(args) => {
            let cs = read_changeset(&args.file)?;
            let paths = locate::locate(global.plex_dir.as_deref(), global.db.as_deref())?;
            crate::review::review(paths, cs, &args.bind, |addr, token| {
                let url = format!("http://{addr}/?token={token}");
                if !addr.ip().is_loopback() {
                    tracing::warn!(
                        "listening on {addr}: anyone who can reach it and has the URL sees your library"
                    );
                }
                let _ =
                    print(&format!("Reviewing {} at {url} (Ctrl-C stops)\n", args.file.display()));
                if args.open {
                    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
                    let _ = std::process::Command::new(opener).arg(&url).spawn();
                }
            })?;
            Ok(0)
        }
        Command::Demo(args) => demo::run(args.dir.as_deref(), &mut anstream::stdout()),
        Command::Show(args) => {
            let cs = read_changeset(&args.file)?;
            let cs = render::summary::filter(cs, &args.sections, &args.items);
            let shown = if args.json {
                cs.write(std::io::stdout().lock(), true)
            } else if args.summary {
                print(&render::summary::summary(&cs)).map_err(std::io::Error::other)
            } else {
                render::plan::show_to(anstream::stdout().lock(), &cs)
            };
            shown.or_else(ignore_broken_pipe)?;
            Ok(0)
        }
        Command::Diff(args) => {
            let (old, new) = (read_changeset(&args.old)?, read_changeset(&args.new)?);
            let name = |p: &PathBuf| p.display().to_string();
            let out = anstream::stdout().lock();
            render::plan::diff_to(out, &old, &new, &name(&args.old), &name(&args.new))
                .or_else(ignore_broken_pipe)?;
            Ok(0)
        }
        Command::Fixture(args) => {
            let opts = fixture::Options {
                scale: args.scale,
                triggers: args.triggers,
                windows: args.windows,
                link_root: args.link_root.map(|p| p.trim_end_matches('/').to_string()),
                pre_icu: args.pre_icu,
                seed: args.seed,
                schema: args.schema,
            };
            let progress = spinner(global, "building fixture");
            let started = Instant::now();
            let report = fixture::build(&args.dir, &opts)?;
            progress.finish_and_clear();
            if args.json {
                print_json(&report)?;
            } else {
                print(&format!("{} in {:.1?}\n", report.summary(), started.elapsed()))?;
            }
            Ok(0)
        }
    }
}

fn plan(global: &Global, args: PlanArgs) -> Result<i32> {
    let spec = load_spec(args.spec.as_deref())?;
    let (paths, db) = open(global)?;
    let flags = Overrides {
        sections: args.sections.clone(),
        stage: args.stage,
        bundles: args.bundles,
        cache: args.cache,
        repair: args.repair,
        image_host: args.image_host,
    };
    let ledger = ledger(&paths)?;
    let progress = spinner(global, "planning");
    let planned = scan::plan(&paths, &db, &spec, &flags, &ledger)?;
    progress.finish_and_clear();
    for warning in &planned.warnings {
        tracing::warn!("{warning}");
    }
    let cs = planned.changeset;
    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    if let Some(out) = args.output.as_ref().filter(|_| !to_stdout) {
        std::fs::File::create(out)
            .and_then(|f| cs.write(f, args.json))
            .with_context(|| format!("cannot write the changeset to {}", out.display()))?;
    }
    use std::io::IsTerminal;
    let shown = if to_stdout || args.json {
        cs.write(std::io::stdout().lock(), args.json)
    } else if std::io::stdout().is_terminal() {
        terminal_plan(&cs, args.full, args.output.as_deref())
    } else {
        render::plan::show_to(anstream::stdout().lock(), &cs)
    };
    shown.or_else(ignore_broken_pipe)?;
    Ok(if args.detailed_exitcode && !cs.is_empty() { 2 } else { 0 })
}

/// Changes a terminal shows in full; a longer plan shows its summary and says how to see it.
const FULL_PLAN_LINES: usize = 1000;

/// `plan` on a terminal: every change when they fit in [`FULL_PLAN_LINES`] lines (or with
/// `--full`), then the summary and the closing line.
fn terminal_plan(cs: &Changeset, full: bool, saved: Option<&Path>) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = anstream::stdout().lock();
    let lines = render::plan::line_count(cs);
    if full || lines <= FULL_PLAN_LINES {
        render::plan::show_items_to(&mut out, cs)?;
    }
    out.write_all(render::summary::summary(cs).as_bytes())?;
    if !full && lines > FULL_PLAN_LINES {
        let how = match saved {
            Some(file) => format!("`tidyplex show {}`", file.display()),
            None => "`tidyplex plan -o plan.yaml`, then `tidyplex show plan.yaml`".to_string(),
        };
        writeln!(
            out,
            "{} lines of changes not shown: see them with {how}, or plan --full.",
            render::count(lines as u64)
        )?;
    }
    Ok(())
}

/// The upload ledger in tidyplex's state folder (read-only here).
fn ledger(paths: &PlexPaths) -> Result<apply::hosts::ledger::Ledger> {
    let state = apply::state_dir(paths);
    apply::hosts::ledger::Ledger::in_state_dir(&state)
        .with_context(|| format!("cannot read the upload ledger in {}", state.display()))
}

fn load_spec(path: Option<&Path>) -> Result<Spec> {
    match path {
        Some(path) => Spec::load(path),
        None => Ok(Spec::default()),
    }
}

fn apply_options(
    global: &Global,
    args: &ApplyOpts,
    root: &Path,
    spec: Option<&Spec>,
) -> Result<apply::Options> {
    Ok(apply::Options {
        image_host: spec.and_then(|s| s.image_host.clone()),
        batch: args.batch as usize,
        strict: args.strict,
        lock_wait: Duration::from_secs_f64(args.lock_wait),
        plex_sqlite: global.plex_sqlite.clone(),
        backup_dir: args.backup_dir.clone(),
        plex: plex_client(global, Some(root))?,
        when_idle: args.when_idle,
        keep: match args.keep {
            Some(keep) => Some(keep),
            None => spec.map(Spec::keep).transpose()?.flatten(),
        },
        ..apply::Options::default()
    })
}

/// `tidyplex history`: every apply, oldest first.
fn history_cmd(global: &Global, args: HistoryArgs) -> Result<i32> {
    let paths = locate::locate(global.plex_dir.as_deref(), global.db.as_deref())?;
    let state = apply::state_dir(&paths);
    let list = apply::journal::list(&state)?;
    let trash = apply::trash::contents(&state);
    if args.json {
        let rows: Vec<serde_json::Value> = list
            .iter()
            .map(|a| {
                let (files, bytes) = trash
                    .iter()
                    .find(|t| t.0 == a.id)
                    .map_or((0, 0), |t| (t.1, t.2));
                serde_json::json!({
                    "id": a.id,
                    "started": a.at,
                    "finished": a.finished,
                    "changeset": a.changeset,
                    "changes": a.changes,
                    "urls_written": a.urls,
                    "files_removed": a.files,
                    "bytes_removed": a.bytes,
                    "kept_until": a.keep_until.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
                    "purged": a.purged,
                    "undone": a.undone,
                    "in_trash": { "files": files, "bytes": bytes },
                    "undo": render::apply::undo_state(a, files),
                })
            })
            .collect();
        print_json(&rows)?;
    } else {
        print(&render::apply::history(&list, &trash))?;
    }
    Ok(0)
}

/// `tidyplex undo [ID]`.
fn undo_cmd(global: &Global, args: UndoArgs) -> Result<i32> {
    let paths = locate::locate(global.plex_dir.as_deref(), global.db.as_deref())?;
    if !args.yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            anyhow::bail!(
                "undo changes a live Plex server; pass --yes to undo without a terminal to ask on"
            );
        }
        let which = args.id.map_or("the last apply".to_string(), |id| format!("apply {id}"));
        let mut err = anstream::stderr();
        let _ = write!(err, "Undo {which} on {}? Only 'yes' goes ahead: ", paths.root.display());
        let _ = err.flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            anyhow::bail!("undo cancelled; nothing was changed");
        }
    }
    let opts = apply::Options {
        lock_wait: Duration::from_secs_f64(args.lock_wait),
        plex_sqlite: global.plex_sqlite.clone(),
        backup_dir: args.backup_dir.clone(),
        ..apply::Options::default()
    };
    let report = apply::undo::undo(&paths, args.id, &opts)?;
    if args.json {
        print_json(&report)?;
    } else {
        print(&render::apply::undo(&report))?;
    }
    Ok(report.exit_code())
}

/// Empties the trash whose keep has run out (apply does it too, when it has changes).
fn purge_expired(paths: &PlexPaths) -> Result<()> {
    let state = apply::state_dir(paths);
    if !apply::trash::root(&state).exists() {
        return Ok(());
    }
    let _lock = apply::lock::acquire(&state.join("apply.lock"), "apply")?;
    let purged = apply::trash::purge(&state, apply::trash::Purge::Expired)?;
    if !purged.is_empty() {
        print(&render::apply::purged(&purged))?;
    }
    Ok(())
}

/// `tidyplex purge`.
fn purge_cmd(global: &Global, args: PurgeArgs) -> Result<i32> {
    use apply::trash::Purge;
    let paths = locate::locate(global.plex_dir.as_deref(), global.db.as_deref())?;
    let state = apply::state_dir(&paths);
    let _lock = apply::lock::acquire(&state.join("apply.lock"), "purge")?;
    let which = match (args.all, args.older_than) {
        (true, _) => Purge::All,
        (false, Some(age)) => Purge::OlderThan(age),
        (false, None) => Purge::Expired,
    };
    let purged = apply::trash::purge(&state, which)?;
    if args.json {
        print_json(&purged)?;
    } else {
        print(&render::apply::purged(&purged))?;
    }
    Ok(0)
}

/// The Plex server, when a token is known (`TIDYPLEX_PLEX_TOKEN`, else `Preferences.xml` in
/// `root`).
fn plex_client(global: &Global, root: Option<&Path>) -> Result<Option<api::Client>> {
    let Some((token, source)) = api::find_token(root) else { return Ok(None) };
    let timeout = Duration::try_from_secs_f64(global.plex_timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| anyhow::anyhow!("--plex-timeout must be a positive number of seconds"))?;
    let mut client =
        api::Client::new(&global.plex_url, token, source, timeout).map_err(anyhow::Error::msg)?;
    if let Some(paths) = root.and_then(|r| locate::locate(Some(r), global.db.as_deref()).ok()) {
        client = client.with_id(api::client_id(&apply::state_dir(&paths)));
    }
    tracing::info!(plex_url = client.url(), token = ?source, "talking to Plex");
    Ok(Some(client))
}

/// `tidyplex plex …`: Plex's own maintenance, in its recommended order, each waited for.
fn plex_cmd(global: &Global, args: PlexArgs) -> Result<i32> {
    let mut actions = args.actions.clone();
    actions.sort();
    actions.dedup();
    if !args.sections.is_empty() && !actions.contains(&Maintenance::EmptyTrash) {
        anyhow::bail!(
            "--section applies to empty-trash; clean-bundles and optimize are server-wide"
        );
    }
    let root = match &global.plex_dir {
        Some(dir) => Some(dir.clone()),
        None if std::env::var_os(api::TOKEN_ENV).is_some() => None,
        None => locate::locate(None, global.db.as_deref()).ok().map(|p| p.root),
    };
    let Some(client) = plex_client(global, root.as_deref())? else {
        anyhow::bail!("{}", apply::plex::NO_TOKEN);
    };
    let wait = Duration::try_from_secs_f64(args.wait)
        .map_err(|_| anyhow::anyhow!("--wait must be a positive number of seconds"))?;
    maintain(&client, &actions, &args.sections, wait)?;
    Ok(0)
}

/// Runs `actions` (sorted) on `client`, printing each as it finishes.
fn maintain(
    client: &api::Client,
    actions: &[Maintenance],
    sections: &[i64],
    wait: Duration,
) -> Result<()> {
    for &op in actions {
        let started = Instant::now();
        let sections = match op {
            Maintenance::EmptyTrash if sections.is_empty() => client.section_ids()?,
            _ => sections.to_vec(),
        };
        client.maintain(op, &sections, wait)?;
        let scope = match op {
            Maintenance::EmptyTrash => {
                let ids: Vec<String> = sections.iter().map(i64::to_string).collect();
                format!(" (sections {})", ids.join(", "))
            }
            _ => String::new(),
        };
        print(&format!("Plex {}{scope}: done in {:.1?}\n", op.name(), started.elapsed()))?;
    }
    Ok(())
}

fn apply_cmd(global: &Global, args: ApplyArgs) -> Result<i32> {
    let cs = read_changeset(&args.file)?;
    let spec = args.spec.as_deref().map(Spec::load).transpose()?;
    let paths = locate::locate(global.plex_dir.as_deref(), global.db.as_deref())?;
    apply::validate(&paths, &cs)?;
    if cs.is_empty() {
        purge_expired(&paths)?;
        print("No changes. The library is clean.\n")?;
        return Ok(0);
    }
    if !args.yes {
        confirm(&cs, &paths)?;
    }
    let opts = apply_options(global, &args.opts, &paths.root, spec.as_ref())?;
    let bar = progress_bar(global, cs.changes.len() as u64, "applying");
    let report =
        apply::apply(&paths, &cs, &args.file.display().to_string(), &opts, &|| bar.inc(1))?;
    bar.finish_and_clear();
    if args.json {
        print_json(&report)?;
    } else {
        print(&render::apply::report(&report))?;
    }
    Ok(report.exit_code())
}

/// Asks on a terminal; refuses without one.
fn confirm(cs: &Changeset, paths: &PlexPaths) -> Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        anyhow::bail!(
            "apply changes a live Plex server; pass --yes to apply without a terminal to ask on"
        );
    }
    let mut err = anstream::stderr();
    let _ = writeln!(err, "{}", render::plan::closing(cs));
    let _ = write!(err, "Apply these changes to {}? Only 'yes' goes ahead: ", paths.root.display());
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        anyhow::bail!("apply cancelled; nothing was changed");
    }
    Ok(())
}

fn run_cmd(global: &Global, args: RunArgs) -> Result<i32> {
    use crate::changeset::PlexAction;
    let spec = Spec::load(&args.spec)?;
    let paths = locate::locate(global.plex_dir.as_deref(), global.db.as_deref())?;
    let opts = apply_options(global, &args.opts, &paths.root, Some(&spec))?;
    // Plex calls go out once per run: Plex needs time to act on them, and planning them again
    // in the next round would not make it faster.
    let mut called: std::collections::HashSet<(PlexAction, i64)> = Default::default();
    let (mut applied, mut calls_incomplete) = (false, false);
    let mut refreshed: std::collections::HashSet<String> = std::collections::HashSet::new();
    for round in 1..=args.max_rounds {
        let db = Db::open(&paths.db)?;
        let ledger = ledger(&paths)?;
        let planned = scan::plan(&paths, &db, &spec, &Overrides::default(), &ledger)?;
        drop(db);
        for warning in &planned.warnings {
            tracing::warn!("{warning}");
        }
        let mut cs = planned.changeset;
        // A Plex call goes once per run; so does a link refresh (a host that has not re-signed
        // the link yet gives the same one back until its next step).
        let again = |c: &crate::changeset::Change| {
            c.plex_call.as_ref().is_some_and(|p| called.contains(&(p.action, p.id)))
                || c.refresh_link.as_ref().is_some_and(|r| refreshed.contains(&r.from))
        };
        if cs.changes.iter().any(again) {
            let changes = cs.changes.into_iter().filter(|c| !again(c)).collect();
            cs = Changeset::new(
                &cs.plex_dir,
                cs.spec,
                cs.items,
                changes,
                cs.summary.kept_local_by_section,
            );
        }
        if cs.is_empty() {
            purge_expired(&paths)?;
            print(&format!("Round {round}: no changes. The library is clean.\n"))?;
            let code = if applied { run_maintenance(&spec, &cs, &opts)? } else { 0 };
            return Ok(code.max(if calls_incomplete { 3 } else { 0 }));
        }
        print(&format!(
            "Round {round}: {}\n",
            render::plan::closing(&cs).lines().next().unwrap_or_default()
        ))?;
        let bar = progress_bar(global, cs.changes.len() as u64, "applying");
        let report =
            apply::apply(&paths, &cs, &format!("run round {round}"), &opts, &|| bar.inc(1))?;
        bar.finish_and_clear();
        print(&render::apply::report(&report))?;
        if report.idle_deferred {
            return Ok(3);
        }
        refreshed.extend(
            cs.changes.iter().filter_map(|c| c.refresh_link.as_ref()).map(|r| r.from.clone()),
        );
        let calls: Vec<_> = cs.changes.iter().filter_map(|c| c.plex_call.as_deref()).collect();
        called.extend(calls.iter().map(|p| (p.action, p.id)));
        calls_incomplete |= !calls.is_empty() && report.exit_code() != 0;
        applied |= report.applied > 0;
        if report.exit_code() == 1 {
            return Ok(1);
        }
    }
    print(&format!(
        "Not converged after {} rounds; run again later (Plex may be busy).\n",
        args.max_rounds
    ))?;
    Ok(3)
}

/// The SPEC's Plex maintenance after a `run` that applied something: 0 done (or none asked),
/// 3 deferred (no token, Plex away or slow), 1 failed.
fn run_maintenance(spec: &Spec, cs: &Changeset, opts: &apply::Options) -> Result<i32> {
    let Some(p) = &spec.plex else { return Ok(0) };
    let actions: Vec<Maintenance> = [
        (p.empty_trash, Maintenance::EmptyTrash),
        (p.clean_bundles, Maintenance::CleanBundles),
        (p.optimize, Maintenance::Optimize),
    ]
    .into_iter()
    .filter_map(|(on, op)| on.then_some(op))
    .collect();
    if actions.is_empty() {
        return Ok(0);
    }
    let Some(client) = &opts.plex else {
        print(&format!("Plex maintenance deferred: {}.\n", apply::plex::NO_TOKEN))?;
        return Ok(3);
    };
    let sections: Vec<i64> = cs.spec.sections.iter().map(|s| s.id).collect();
    match maintain(client, &actions, &sections, Duration::from_secs(3600)) {
        Ok(()) => Ok(0),
        Err(e) => {
            let transient = e.downcast_ref::<api::PlexError>().is_some_and(|e| e.is_transient());
            print(&format!("Plex maintenance did not finish: {e:#}\n"))?;
            Ok(if transient { 3 } else { 1 })
        }
    }
}

/// The folder `serve` publishes: `--dir`, else the `path` of the SPEC's `dir` image host.
fn serve_dir(args: &ServeArgs) -> Result<PathBuf> {
    if let Some(dir) = &args.dir {
        return Ok(dir.clone());
    }
    let Some(spec) = &args.spec else {
        anyhow::bail!("serve needs the image folder: name it with --dir DIR, or give a SPEC whose image_host is dir");
    };
    match Spec::load(spec)?.image_host {
        Some(crate::spec::ImageHost::Dir { path, .. }) => Ok(PathBuf::from(path)),
        _ => anyhow::bail!(
            "{} has no image_host of kind dir; name the folder with --dir DIR",
            spec.display()
        ),
    }
}

/// Reads and validates a changeset file.
fn read_changeset(path: &Path) -> Result<Changeset> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the changeset {}", path.display()))?;
    Changeset::parse(&text).with_context(|| format!("{} is refused", path.display()))
}

/// Locates the data folder and opens its DB read-only.
fn open(global: &Global) -> Result<(PlexPaths, Db)> {
    let paths = locate::locate(global.plex_dir.as_deref(), global.db.as_deref())?;
    tracing::info!(plex_dir = %paths.root.display(), db = %paths.db.display(), "opening");
    let db = Db::open(&paths.db)?;
    Ok((paths, db))
}

/// A spinner on stderr, drawn only on a terminal and never with `-q`.
fn spinner(global: &Global, message: &str) -> ProgressBar {
    if global.quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn print(text: &str) -> Result<()> {
    let mut out = anstream::stdout().lock();
    out.write_all(text.as_bytes()).or_else(ignore_broken_pipe)?;
    out.flush().or_else(ignore_broken_pipe)
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).or_else(ignore_broken_pipe)?;
    out.flush().or_else(ignore_broken_pipe)
}

/// A progress bar on stderr, drawn only on a terminal and never with `-q`.
fn progress_bar(global: &Global, len: u64, message: &str) -> ProgressBar {
    if global.quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_message(message.to_string());
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// `tidyplex status | head` is not an error.
fn ignore_broken_pipe(e: std::io::Error) -> Result<()> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(e.into())
    }
}
