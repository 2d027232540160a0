use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use peerline::flow::{self, Bundle};
use peerline::lang::Lang;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod bench_cmd;

#[derive(Parser)]
#[command(name = "peerline", version, about = "Confidential peer support and triage for health workers")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Chat with the bot in this terminal (or drive it line by line from a script).
    Chat {
        #[arg(long, default_value = "flows")]
        flows: PathBuf,
        /// Start in this language instead of the default.
        #[arg(long)]
        lang: Option<String>,
        /// Use this instant (RFC 3339) for opening hours, for repeatable scripts.
        #[arg(long)]
        now: Option<String>,
        #[command(flatten)]
        db: DbArgs,
        /// Who is chatting (only ever stored as a keyed pseudonym).
        #[arg(long, default_value = "local")]
        user: String,
        /// Keep nothing: no database, no pepper file.
        #[arg(long)]
        no_store: bool,
        /// Forget a conversation after this many minutes of quiet.
        #[arg(long, default_value_t = 30)]
        idle_minutes: u64,
    },
    /// Create the database or bring its schema up to date.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print a new pepper file, or rotate the pepper in an existing one.
    Keygen {
        /// Add a new pepper in front of the ones in FILE (older ones stay until their sessions expire).
        #[arg(long, value_name = "FILE")]
        rotate: Option<PathBuf>,
    },
    /// Anonymous usage counts, with small cells hidden.
    Report {
        #[command(flatten)]
        db: DbArgs,
        /// First day (YYYY-MM-DD); default 12 weeks ago.
        #[arg(long)]
        from: Option<String>,
        /// Last day (YYYY-MM-DD); default today.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value = "week", value_parser = ["day", "week", "month"])]
        by: String,
        #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
        format: String,
        /// Counts below this print as "<N" (never below 5).
        #[arg(long, default_value_t = peerline::report::DEFAULT_THRESHOLD)]
        threshold: i64,
        /// Add discrete Laplace noise with this ε per cell (smaller: more noise).
        #[arg(long)]
        epsilon: Option<f64>,
    },
    /// Check a flows directory and report every problem as file:line:col.
    Check {
        #[arg(default_value = "flows")]
        dir: PathBuf,
        /// Also list every string whose translation is marked for review.
        #[arg(long)]
        reviews: bool,
    },
    /// Run conversation tests (YAML) against the flows.
    Test {
        /// Test files or directories.
        #[arg(default_value = "tests/flows")]
        paths: Vec<PathBuf>,
        #[arg(long, default_value = "flows")]
        flows: PathBuf,
    },
    /// Classify messages from stdin, one per line: prints crisis, concern or none.
    SafetyCheck {
        #[arg(long)]
        lang: Option<String>,
        #[arg(long, default_value = "flows")]
        flows: PathBuf,
    },
    /// Print the JSON Schema of flow files, for editors.
    Schema,
    /// Load generator: simulated workers walking the default flows through the bot and a store.
    Bench(bench_cmd::BenchArgs),
    /// Run the bot on a chat platform until SIGINT or SIGTERM.
    Run {
        /// Connect to Matrix (settings from PEERLINE_MATRIX_* variables).
        #[arg(long)]
        matrix: bool,
        #[arg(long, default_value = "flows")]
        flows: PathBuf,
        #[command(flatten)]
        db: DbArgs,
        /// Forget a conversation after this many minutes of quiet.
        #[arg(long, default_value_t = 30)]
        idle_minutes: u64,
    },
}

#[derive(clap::Args)]
struct DbArgs {
    /// A SQLite file (created if missing) or a postgres:// URL. Env: PEERLINE_DATABASE_URL.
    #[arg(long = "db", env = "PEERLINE_DATABASE_URL", default_value = "peerline.db")]
    db: String,
}

impl DbArgs {
    fn location(&self) -> peerline::store::Location {
        peerline::store::Location::parse(&self.db)
    }
    /// The pepper file's default place: beside a SQLite file, else in the working directory.
    fn default_pepper_file(&self) -> PathBuf {
        match self.location() {
            peerline::store::Location::Sqlite(p) => {
                let mut name = p.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "peerline".into());
                name.push(".pepper");
                p.with_file_name(name)
            }
            peerline::store::Location::Postgres(_) => PathBuf::from("peerline.pepper"),
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}

async fn open_store(db: &DbArgs) -> Result<peerline::store::Store> {
    peerline::store::Store::open(&db.location()).await.map_err(|e| anyhow::anyhow!(e))
}

fn load_peppers(db: &DbArgs) -> Result<peerline::privacy::PepperRing> {
    let (ring, notice) = pepper_source(db).load()?;
    if let Some(peerline::privacy::PepperNotice::Created(path)) = notice {
        eprintln!(
            "peerline: created a new secret pepper in {} (owner-only). Keep it private; it turns user ids into pseudonyms.",
            path.display()
        );
    }
    Ok(ring)
}

fn pepper_source(db: &DbArgs) -> peerline::privacy::PepperSource {
    peerline::privacy::PepperSource::from_env(&db.default_pepper_file())
}

fn parse_date(s: &str, what: &str) -> Result<jiff::civil::Date> {
    s.parse::<jiff::civil::Date>().with_context(|| format!("{what} `{s}` is not a date like 2026-01-31"))
}

fn main() -> ExitCode {
    peerline::privacy::install_panic_hook();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn load(dir: &Path) -> Result<Bundle> {
    match flow::load_dir(dir) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{w}");
            }
            Ok(loaded.bundle)
        }
        Err(e) => {
            for d in &e.diagnostics {
                eprintln!("{d}");
            }
            bail!("the flows in {} have errors; run `peerline check {}`", dir.display(), dir.display())
        }
    }
}

fn run(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Chat { flows, lang, now, db, user, no_store, idle_minutes } => {
            let bundle = load(&flows)?;
            let now = now.map(|s| s.parse::<jiff::Timestamp>().with_context(|| format!("--now {s}"))).transpose()?;
            let opts = peerline::transport::console::Options { lang: lang.map(|l| Lang::new(&l)), now };
            let stdin = io::stdin();
            if no_store {
                peerline::transport::console::run_in_memory(&bundle, &opts, stdin.lock(), io::stdout().lock())?;
                return Ok(ExitCode::SUCCESS);
            }
            let peppers = load_peppers(&db)?;
            runtime()?.block_on(async {
                let store = open_store(&db).await?;
                let settings = peerline::bot::Settings {
                    idle_timeout: std::time::Duration::from_secs(idle_minutes.max(1) * 60),
                    ..Default::default()
                };
                let bot = peerline::bot::Bot::new(std::sync::Arc::new(bundle), store, settings);
                bot.expire(now.unwrap_or_else(jiff::Timestamp::now)).await.map_err(|e| anyhow::anyhow!(e))?;
                let peppers = peerline::bot::retire_peppers(bot.store(), &pepper_source(&db), &peppers)
                    .await
                    .map_err(|e| anyhow::anyhow!(e))?;
                peerline::transport::console::run_with_store(&bot, &peppers, &user, &opts, stdin.lock(), io::stdout())
                    .await?;
                bot.store().close().await;
                Ok::<_, anyhow::Error>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Migrate { db } => {
            runtime()?.block_on(async {
                let store = open_store(&db).await?;
                store.close().await;
                Ok::<_, anyhow::Error>(())
            })?;
            println!("ok: {} is up to date", db.location().describe());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Keygen { rotate } => {
            use peerline::privacy::{Pepper, PepperRing, PepperSource};
            match rotate {
                None => print!("{}", PepperRing::new(Pepper::generate(1)?, vec![]).to_file_text().as_str()),
                Some(path) => {
                    if !path.exists() {
                        bail!("{} does not exist; run `peerline keygen > {}` first", path.display(), path.display());
                    }
                    let (ring, _) = PepperSource::File(path.clone()).load()?;
                    let rotated = ring.rotated()?;
                    peerline::privacy::write_private(&path, &rotated.to_file_text())?;
                    eprintln!(
                        "peerline: pepper v{} added to {}; new conversations use it. Older versions stay until their sessions expire.",
                        rotated.current_version(),
                        path.display()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Report { db, from, to, by, format, threshold, epsilon } => {
            if threshold < peerline::report::MIN_THRESHOLD {
                bail!("--threshold must be at least {}", peerline::report::MIN_THRESHOLD);
            }
            if let Some(e) = epsilon
                && !(e > 0.0 && e.is_finite())
            {
                bail!("--epsilon must be a positive number");
            }
            let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
            let to = match to {
                Some(s) => parse_date(&s, "--to")?,
                None => today,
            };
            let from = match from {
                Some(s) => parse_date(&s, "--from")?,
                None => to.checked_sub(jiff::Span::new().weeks(12)).unwrap_or(to),
            };
            if from > to {
                bail!("--from {from} is after --to {to}");
            }
            let rows = runtime()?.block_on(async {
                let store = open_store(&db).await?;
                let rows = store.counts(&from.to_string(), &to.to_string()).await.map_err(|e| anyhow::anyhow!(e));
                store.close().await;
                rows
            })?;
            let period = peerline::report::Period::parse(&by).unwrap_or(peerline::report::Period::Week);
            let opts = peerline::report::Options { from, to, period, threshold, epsilon };
            let report = peerline::report::build(&rows, &opts, &mut peerline::report::OsRandom);
            match format.as_str() {
                "csv" => print!("{}", report.to_csv()),
                "json" => println!("{}", serde_json::to_string_pretty(&report.to_json())?),
                _ => print!("{}", report.to_table()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Check { dir, reviews } => {
            let started = std::time::Instant::now();
            match flow::load_dir(&dir) {
                Ok(loaded) => {
                    for w in &loaded.warnings {
                        println!("{w}");
                    }
                    if reviews {
                        for line in peerline::flow::reviews::list(&loaded.bundle) {
                            println!("{line}");
                        }
                    }
                    let b = &loaded.bundle;
                    println!(
                        "ok: {} files, {} flows, {} services, {} languages, {} warning(s) in {} ms",
                        loaded.files,
                        b.flows.len(),
                        b.directory.services.len(),
                        b.settings.languages.len(),
                        loaded.warnings.len(),
                        started.elapsed().as_millis()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    for d in &e.diagnostics {
                        println!("{d}");
                    }
                    let errors = e.diagnostics.iter().filter(|d| d.is_error()).count();
                    let warnings = e.diagnostics.len() - errors;
                    println!("{errors} error(s), {warnings} warning(s)");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Cmd::Test { paths, flows } => {
            let bundle = load(&flows)?;
            match peerline::convtest::run_all(&bundle, &paths) {
                Ok(summary) => {
                    print!("{}", summary.report);
                    println!("{} passed, {} failed", summary.passed, summary.failed);
                    Ok(if summary.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
                }
                Err(diags) => {
                    for d in &diags {
                        println!("{d}");
                    }
                    Ok(ExitCode::from(2))
                }
            }
        }
        Cmd::SafetyCheck { lang, flows } => {
            let bundle = load(&flows)?;
            let lang = lang.map(|l| Lang::new(&l));
            let stdin = io::stdin();
            let mut out = io::BufWriter::new(io::stdout().lock());
            for line in stdin.lock().split(b'\n') {
                let line = line?;
                let text = String::from_utf8_lossy(&line);
                let text = text.strip_suffix('\r').unwrap_or(&text);
                let a = match &lang {
                    Some(l) => bundle.lexicon.assess_with_lang(text, l),
                    None => bundle.lexicon.assess(text),
                };
                writeln!(out, "{}", a.tier.as_str())?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench(args) => {
            bench_cmd::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run { matrix, flows, db, idle_minutes } => run_bot(matrix, &flows, &db, idle_minutes),
        Cmd::Schema => {
            println!("{}", serde_json::to_string_pretty(&peerline::flow::schema::flow_schema())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `peerline run`: flows, store and peppers as in `chat`, then the platform transport
/// until SIGINT/SIGTERM; idle sessions are expired every minute.
fn run_bot(matrix: bool, flows: &Path, db: &DbArgs, idle_minutes: u64) -> Result<ExitCode> {
    if !matrix {
        bail!("choose a platform: peerline run --matrix");
    }
    #[cfg(not(feature = "matrix"))]
    {
        let _ = (flows, db, idle_minutes);
        bail!("this peerline was built without Matrix support (cargo feature `matrix`)");
    }
    #[cfg(feature = "matrix")]
    {
        use peerline::transport::matrix;
        use std::sync::Arc;
        let filter = matrix::log_directives(std::env::var("RUST_LOG").ok().as_deref(), "info");
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(io::stderr)
            .init();
        let config = matrix::MatrixConfig::from_env()?;
        let bundle = load(flows)?;
        let peppers = Arc::new(load_peppers(db)?);
        let rt =
            tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
        let result = rt.block_on(async {
            let store = open_store(db).await?;
            let settings = peerline::bot::Settings {
                idle_timeout: std::time::Duration::from_secs(idle_minutes.max(1) * 60),
                ..Default::default()
            };
            let bot = Arc::new(peerline::bot::Bot::new(Arc::new(bundle), store, settings));
            let expiry = tokio::spawn({
                let bot = bot.clone();
                async move {
                    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
                    loop {
                        every.tick().await;
                        if let Err(e) = bot.expire(jiff::Timestamp::now()).await {
                            tracing::warn!(error = %e, "expiring idle sessions failed");
                        }
                    }
                }
            });
            let result = matrix::run(config, bot.clone(), peppers, shutdown_signal()).await;
            expiry.abort();
            bot.store().close().await;
            result
        });
        // Blocking tasks (store I/O) get a moment to finish, not forever.
        rt.shutdown_timeout(std::time::Duration::from_secs(2));
        result?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    }
}

/// Resolves on SIGINT or SIGTERM.
#[cfg(feature = "matrix")]
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
