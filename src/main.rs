use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use peerline::flow::{self, Bundle};
use peerline::lang::Lang;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
}

fn main() -> ExitCode {
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
        Cmd::Chat { flows, lang, now } => {
            let bundle = load(&flows)?;
            let now = now.map(|s| s.parse::<jiff::Timestamp>().with_context(|| format!("--now {s}"))).transpose()?;
            let opts = peerline::transport::console::Options { lang: lang.map(|l| Lang::new(&l)), now };
            let stdin = io::stdin();
            peerline::transport::console::run(&bundle, &opts, stdin.lock(), io::stdout().lock())?;
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
        Cmd::Schema => {
            println!("{}", serde_json::to_string_pretty(&peerline::flow::schema::flow_schema())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
