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
    /// Serve the administrators' page (anonymous counts, small cells hidden), /healthz and /metrics.
    /// The token comes from PEERLINE_ADMIN_TOKEN or the file named by PEERLINE_ADMIN_TOKEN_FILE.
    Admin {
        #[command(flatten)]
        db: DbArgs,
        /// Address to listen on; anything but loopback should sit behind a TLS proxy.
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: std::net::SocketAddr,
        /// Counts below this show as "<N" (never below 5).
        #[arg(long, default_value_t = peerline::report::DEFAULT_THRESHOLD)]
        threshold: i64,
    },
    /// Check a flows directory and report every problem as file:line:col.
    Check {
        #[arg(default_value = "flows")]
        dir: PathBuf,
        /// Also check this settings file (peerline.toml is checked when present).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
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
    /// Run the bot on its chat platforms until SIGINT or SIGTERM (SIGHUP reloads the flows).
    Run(RunArgs),
}

/// `peerline run`: flags override the environment, which overrides peerline.toml.
#[derive(clap::Args)]
struct RunArgs {
    /// Settings file (default: peerline.toml in the working directory, if present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Connect to Matrix (also when [matrix] is in the config; settings from it or PEERLINE_MATRIX_*).
    #[arg(long)]
    matrix: bool,
    /// Connect to Discord (also when [discord] is in the config; settings from it or PEERLINE_DISCORD_*).
    #[arg(long)]
    discord: bool,
    /// Also serve `USER<TAB>TEXT` lines on stdin/stdout (scripts and tests).
    #[arg(long)]
    stdio: bool,
    /// The flows directory (config `flows`, env PEERLINE_FLOWS; default `flows`).
    #[arg(long)]
    flows: Option<PathBuf>,
    /// A SQLite file or a postgres:// URL (config `database`, env PEERLINE_DATABASE_URL).
    #[arg(long)]
    db: Option<String>,
    /// Forget a conversation after this many minutes of quiet (config `idle_minutes`).
    #[arg(long)]
    idle_minutes: Option<u64>,
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

/// The runtime of the running bot, and of `peerline bench`, which measures it: one
/// worker thread unless TOKIO_WORKER_THREADS says otherwise. The bot's own work is
/// small, and every extra worker costs context switches and memory (BENCHMARKS.md).
fn bot_runtime() -> Result<tokio::runtime::Runtime> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        rt.worker_threads(1);
    }
    rt.enable_all().build().context("starting the async runtime")
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
        Cmd::Admin { db, bind, threshold } => run_admin(&db, bind, threshold),
        Cmd::Check { dir, reviews, config } => {
            if !check_config(config.as_deref()) {
                return Ok(ExitCode::FAILURE);
            }
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
        Cmd::Run(args) => run_bot(args),
        Cmd::Schema => {
            println!("{}", serde_json::to_string_pretty(&peerline::flow::schema::flow_schema())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `peerline admin`: the administrators' page until SIGINT or SIGTERM.
fn run_admin(db: &DbArgs, bind: std::net::SocketAddr, threshold: i64) -> Result<ExitCode> {
    if threshold < peerline::report::MIN_THRESHOLD {
        bail!("--threshold must be at least {}", peerline::report::MIN_THRESHOLD);
    }
    let token = peerline::admin::Token::from_env()?;
    if !bind.ip().is_loopback() {
        eprintln!(
            "peerline: WARNING: the admin page will listen on {bind}, reachable from other machines. \
             The token travels in clear over plain HTTP: put a TLS proxy in front, or bind 127.0.0.1."
        );
    }
    runtime()?.block_on(async {
        let store = open_store(db).await?;
        let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("listening on {bind}"))?;
        eprintln!("peerline: admin page on http://{}/ (Ctrl-C to stop)", listener.local_addr()?);
        let options = peerline::admin::Options { threshold, ..peerline::admin::Options::new(token) };
        peerline::admin::serve(listener, store.clone(), options, shutdown_signal()).await?;
        store.close().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `peerline check`: the settings file, when one is named or peerline.toml exists.
/// Prints its problems; false if there are any.
fn check_config(explicit: Option<&Path>) -> bool {
    use peerline::config::Config;
    let checked = (|| -> Result<Option<PathBuf>> {
        let (mut c, path) = Config::locate(explicit)?;
        c.apply_env(peerline::config::process_env)?;
        c.validate()?;
        if c.matrix_enabled() {
            let get = c.matrix_lookup(peerline::config::process_env)?;
            #[cfg(feature = "matrix")]
            peerline::transport::matrix::MatrixConfig::from_lookup(get)?;
            #[cfg(not(feature = "matrix"))]
            drop(get);
        }
        if c.discord_enabled() {
            let get = c.discord_lookup(peerline::config::process_env)?;
            #[cfg(feature = "discord")]
            peerline::transport::discord::DiscordConfig::from_lookup(get)?;
            #[cfg(not(feature = "discord"))]
            drop(get);
        }
        Ok(path)
    })();
    match checked {
        Ok(Some(path)) => {
            println!("ok: {}", path.display());
            true
        }
        Ok(None) => true,
        Err(e) => {
            println!("{e:#}");
            false
        }
    }
}

/// `peerline run`: settings from flags, environment and peerline.toml; flows, store
/// and peppers as in `chat`; then every configured transport, concurrently and
/// sharing one bot, until SIGINT/SIGTERM (graceful) while SIGHUP and edits reload
/// the flows. Idle sessions are expired every minute.
fn run_bot(args: RunArgs) -> Result<ExitCode> {
    use peerline::config::{Config, process_env};
    use std::sync::Arc;
    use std::time::Duration;

    let (mut cfg, _path) = Config::locate(args.config.as_deref())?;
    cfg.apply_env(process_env)?;
    if let Some(f) = args.flows {
        cfg.flows = Some(f);
    }
    if let Some(d) = args.db {
        cfg.database = Some(d);
    }
    if let Some(m) = args.idle_minutes {
        cfg.idle_minutes = Some(m);
    }
    cfg.validate()?;

    let rust_log = std::env::var("RUST_LOG").ok();
    #[allow(unused_mut)]
    let mut filter = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or_else(|| cfg.log.level.clone());
    // Each transport silences the libraries that would log ids (unless RUST_LOG names them).
    #[cfg(feature = "matrix")]
    {
        filter = peerline::transport::matrix::log_directives(Some(&filter), &cfg.log.level);
    }
    #[cfg(feature = "discord")]
    {
        filter = peerline::transport::discord::log_directives(Some(&filter), &cfg.log.level);
    }
    peerline::logging::init(&filter);

    let use_matrix = args.matrix || cfg.matrix_enabled();
    let use_discord = args.discord || cfg.discord_enabled();
    if !use_matrix && !use_discord && !args.stdio {
        bail!("choose a platform: peerline run --matrix and/or --discord, or their sections in peerline.toml");
    }
    #[cfg(not(feature = "matrix"))]
    if use_matrix {
        bail!("this peerline was built without Matrix support (cargo feature `matrix`)");
    }
    #[cfg(not(feature = "discord"))]
    if use_discord {
        bail!("this peerline was built without Discord support (cargo feature `discord`)");
    }
    #[cfg(feature = "discord")]
    let discord_config = match use_discord {
        true => Some(peerline::transport::discord::DiscordConfig::from_lookup(cfg.discord_lookup(process_env)?)?),
        false => None,
    };
    #[cfg(feature = "matrix")]
    let matrix_config = match use_matrix {
        true => Some(peerline::transport::matrix::MatrixConfig::from_lookup(cfg.matrix_lookup(process_env)?)?),
        false => None,
    };

    let flows = cfg.flows.clone().unwrap_or_else(|| PathBuf::from("flows"));
    let db = DbArgs { db: cfg.database.clone().unwrap_or_else(|| "peerline.db".into()) };
    let bundle = load(&flows)?;
    let pepper_file = cfg.pepper_file.clone().unwrap_or_else(|| db.default_pepper_file());
    let (ring, notice) = peerline::privacy::PepperSource::from_env(&pepper_file).load()?;
    if let Some(peerline::privacy::PepperNotice::Created(path)) = notice {
        tracing::info!(file = %path.display(), "created a new secret pepper (owner-only); keep it private");
    }
    let peppers = Arc::new(ring);
    let grace = Duration::from_secs(cfg.shutdown.grace_seconds);

    let rt = bot_runtime()?;
    let result = rt.block_on(async {
        let store = open_store(&db).await?;
        let settings =
            peerline::bot::Settings { idle_timeout: cfg.idle_timeout(), limits: cfg.limits(), ..Default::default() };
        let mut bot = peerline::bot::Bot::new(Arc::new(bundle), store.clone(), settings);
        if let Some(h) = cfg.handoff()? {
            bot = bot.with_handoff(Arc::new(peerline::handoff::Hub::new(h, store)));
        }
        let bot = Arc::new(bot);
        // Requests nobody claimed in time: the worker is told and offered services.
        let handoff_ticks = bot.handoff().cloned().map(|hub| {
            let bot = bot.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                loop {
                    every.tick().await;
                    hub.tick(&bot.bundle(), jiff::Timestamp::now()).await;
                }
            })
        });
        let expiry = tokio::spawn({
            let bot = bot.clone();
            async move {
                let mut every = tokio::time::interval(Duration::from_secs(60));
                loop {
                    every.tick().await;
                    if let Err(e) = bot.expire(jiff::Timestamp::now()).await {
                        tracing::warn!(error = %e, "expiring idle sessions failed");
                    }
                    bot.prune_limits();
                }
            }
        });

        // Start-up's and each sync's freed memory back to the system (peerline::memory).
        let release = tokio::spawn(async {
            let mut every = tokio::time::interval(peerline::memory::RELEASE_EVERY);
            loop {
                every.tick().await;
                peerline::memory::release_freed();
            }
        });

        // SIGINT/SIGTERM flip `stop`; each transport gets a future that resolves on it.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
        let signals = tokio::spawn(signals(stop_tx.clone(), reload_tx));
        let reloader = tokio::spawn(peerline::reload::run(
            bot.clone(),
            flows.clone(),
            peerline::reload::Options { watch: cfg.reload.watch, poll: Duration::from_millis(cfg.reload.poll_ms) },
            reload_rx,
        ));

        let mut transports: tokio::task::JoinSet<(&'static str, Result<()>)> = tokio::task::JoinSet::new();
        #[cfg(feature = "matrix")]
        if let Some(mc) = matrix_config {
            let (bot, peppers, stop) = (bot.clone(), peppers.clone(), stopped());
            transports.spawn(async move { ("matrix", peerline::transport::matrix::run(mc, bot, peppers, stop).await) });
        }
        #[cfg(feature = "discord")]
        if let Some(dc) = discord_config {
            let (bot, peppers, stop) = (bot.clone(), peppers.clone(), stopped());
            transports
                .spawn(async move { ("discord", peerline::transport::discord::run(dc, bot, peppers, stop).await) });
        }
        if args.stdio {
            let (bot, peppers, stop) = (bot.clone(), peppers.clone(), stopped());
            let out: peerline::transport::stdio::Output = Arc::new(std::sync::Mutex::new(io::stdout()));
            transports.spawn(async move {
                let input = tokio::io::BufReader::new(tokio::io::stdin());
                let r = peerline::transport::stdio::run(bot, peppers, input, out, stop, grace).await;
                ("stdio", r.map_err(anyhow::Error::from))
            });
        }
        tracing::info!("running");

        // Wait for every transport; a failing one stops the others. Once stopping,
        // the transports get `grace` (plus a margin) to finish what they hold.
        let mut failure = None;
        let stop_seen = stopped();
        tokio::pin!(stop_seen);
        loop {
            let next = tokio::select! {
                n = transports.join_next() => n,
                _ = &mut stop_seen => break,
            };
            match next {
                None => break,
                Some(Ok((name, Err(e)))) => {
                    tracing::error!(transport = name, "transport stopped with an error; stopping");
                    failure.get_or_insert(e);
                    let _ = stop_tx.send(true);
                }
                Some(Ok((_, Ok(())))) => {}
                Some(Err(e)) => {
                    tracing::error!(panicked = e.is_panic(), "transport task failed; stopping");
                    let _ = stop_tx.send(true);
                }
            }
        }
        let _ = stop_tx.send(true);
        tracing::info!("stopping: no new messages; finishing those in progress");
        // Anyone in a handoff is told it ended (the desk lives in memory only).
        if let Some(ticks) = handoff_ticks {
            ticks.abort();
        }
        if let Some(hub) = bot.handoff() {
            hub.shutdown(&bot.bundle(), jiff::Timestamp::now()).await;
        }
        let finish = async {
            while let Some(r) = transports.join_next().await {
                if let Ok((_, Err(e))) = r {
                    failure.get_or_insert(e);
                }
            }
        };
        if tokio::time::timeout(grace + Duration::from_secs(1), finish).await.is_err() {
            tracing::warn!("some transports were still busy after the grace period");
            transports.abort_all();
        }
        // Each message commits its session and counters in one transaction: once no
        // message is in flight, nothing is left to flush but the store itself.
        if !bot.drain(grace).await {
            tracing::warn!(in_flight = bot.in_flight(), "messages still in flight after the grace period");
        }
        signals.abort();
        reloader.abort();
        expiry.abort();
        release.abort();
        bot.store().close().await;
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    });
    // Blocking tasks (store I/O, a reload) get a moment to finish, not forever.
    rt.shutdown_timeout(Duration::from_secs(2));
    result?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let (reload, _ignored) = tokio::sync::mpsc::channel(1);
    tokio::spawn(signals(stop, reload));
    let _ = stopped.wait_for(|s| *s).await;
}

/// SIGINT or SIGTERM: stop. SIGHUP: reload the flows (without a handler it would kill us).
async fn signals(stop: tokio::sync::watch::Sender<bool>, reload: tokio::sync::mpsc::Sender<()>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
            tracing::warn!("cannot install signal handlers; only Ctrl-C stops the bot");
            let _ = tokio::signal::ctrl_c().await;
            let _ = stop.send(true);
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = hup.recv() => {
                    let _ = reload.try_send(());
                }
            }
        }
        let _ = stop.send(true);
    }
    #[cfg(not(unix))]
    {
        let _ = reload;
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
    }
}
