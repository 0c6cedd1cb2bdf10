//! The whole command line: hvkvp 2.0's verbs and options beside the modern
//! forms. A line in *2.0 form* ([`Cli::is_2_0_form`]) behaves as 2.0 did;
//! an option with nothing to act on is refused ([`Cli::unmeant`]).

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{EnumValueParser, PossibleValue, TypedValueParser};
use clap::{Args, FromArgMatches, Parser, ValueEnum, ValueHint};

use crate::examples;
use crate::output::Format;
use crate::pool::{self, PoolId};

/// Read, write and delete Hyper-V Key-Value Pair (KVP) records.
///
/// hvkvp works on the pool files the Hyper-V KVP daemon (hv_kvp_daemon) keeps in /var/lib/hyperv:
/// pool 0 holds what the host admin sent, pool 3 what the host tells about itself, and pool 1 is
/// what the guest sends to the host. Changes are made in place, under the same locks the daemon
/// and cloud-init use.
#[derive(Debug, Parser)]
#[command(
    name = "hvkvp",
    version,
    after_help = examples::MAIN.0,
    max_term_width = 100
)]
pub struct Cli {
    /// The options every verb takes.
    #[command(flatten)]
    pub global: Global,

    /// The verb and its own options.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every verb takes, before or after it.
#[derive(Debug, Args)]
pub struct Global {
    /// Directory of the pool files. Default: $HVKVP_POOL_DIR when it is set
    /// and not empty, else /var/lib/hyperv.
    // Not clap's `env`: clap shows an option set from the environment in
    // every usage line as if it were required, and refuses an empty value.
    #[arg(long, value_name = "DIR", global = true, value_hint = ValueHint::DirPath)]
    pub pool_dir: Option<PathBuf>,

    /// Pool: 0-4, or external/in, guest/out, auto, auto-external/params, auto-internal. Default:
    /// 0 for read, 1 for write and delete, every pool for check.
    #[arg(short = 'p', long, value_parser = PoolId::parse, global = true)]
    pub pool: Option<PoolId>,

    /// hvkvp 2.0 spelling of --pool: in (0), out (1), params (3), in any
    /// case; as in 2.0, the first letter is enough.
    #[arg(short = 's', long, value_parser = KeysetParser, global = true, conflicts_with = "pool")]
    pub keyset: Option<Keyset>,

    /// Seconds to wait for a lock before giving up (exit 3).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs, global = true)]
    pub lock_timeout: Duration,

    /// Print nothing on stdout; the exit status says it all.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
}

impl Cli {
    /// Is this a 2.0-form command line: no key or value as a plain argument,
    /// and only the options hvkvp 2.0 had (besides the global ones but -p)?
    pub fn is_2_0_form(&self) -> bool {
        self.global.pool.is_none()
            && match &self.command {
                Command::Read(a) => {
                    a.key.is_none()
                        && a.output.is_none()
                        && a.wait.is_none()
                        && !(a.matching.regex || a.all_pools || a.null || a.join)
                }
                Command::Write(a) => {
                    a.key.is_none()
                        && a.value.is_none()
                        && a.batch.is_none()
                        && a.key_opt.is_some()
                        && !(a.force || a.split || a.null || a.chomp || a.keep_newline)
                }
                Command::Delete(a) => {
                    a.key.is_none() && !a.matching.regex && !a.force && !a.if_stale
                }
                Command::Check(_) | Command::Generate(_) => false,
            }
    }

    /// Why a line clap accepts would not do what it asks, if so: an option
    /// with nothing to act on is refused, not dropped. (clap's `requires`
    /// does not hold against an argument that conflicts with one given.)
    pub fn unmeant(&self) -> Option<String> {
        let compat = self.is_2_0_form();
        const WITH_K: &str = "goes with -k PATTERN: a plain KEY is matched exactly";
        const NOTHING: &str = "says how keys are matched, and no KEY or -k PATTERN is given";
        // With nothing to match, a 2.0-form line changes nothing, as in 2.0.
        let matching = |m: &MatchArgs, key: bool, pattern: bool, also_i: bool| {
            match () {
                _ if pattern => None,
                _ if m.regex => Some(("-E", WITH_K)),
                _ if key && m.exact == Some(OnOff::Off) => Some(("-m off", WITH_K)),
                _ if key && m.invert => Some(("-n", WITH_K)),
                _ if key || compat => None,
                _ if m.invert => Some(("-n", NOTHING)),
                _ if m.exact.is_some() => Some(("-m", NOTHING)),
                _ if m.ignore_case && !also_i => Some(("-i", NOTHING)),
                _ => None,
            }
            .map(|(opt, why)| format!("{opt} {why}"))
        };
        let (g, refused) = (&self.global, |why: &str| Some(why.to_string()));
        let timeout = g.lock_timeout != DEFAULT_LOCK_TIMEOUT;
        let any_global = g.pool_dir.is_some() || g.pool().is_some() || g.quiet || timeout;
        match &self.command {
            // clap's `conflicts_with` on -a holds only against -p and -s given after the verb:
            // `hvkvp -p 1 read -a` read every pool.
            Command::Read(ReadArgs { all_pools, .. })
            | Command::Check(CheckArgs { all_pools, .. })
                if *all_pools && g.pool().is_some() =>
            {
                refused("-a is every pool, -p and -s name one: give one or the other")
            }
            Command::Read(a) if a.key.is_none() && (a.wait.is_some() || a.join) => {
                let opt = if a.join { "--join" } else { "--wait" };
                Some(format!("{opt} goes with a plain KEY, not -k PATTERN"))
            }
            Command::Read(a) => matching(&a.matching, a.key.is_some(), a.pattern.is_some(), false),
            Command::Delete(a) if a.matching.invert && a.pattern.is_none() => match a.key {
                Some(_) => Some(format!("-n {WITH_K}")),
                None => refused("-n (delete the keys that do not match) goes with -k PATTERN"),
            },
            Command::Delete(a) => {
                let (key, pattern) = (a.key.is_some(), a.pattern.is_some());
                matching(&a.matching, key, pattern, a.clean_duplicates)
            }
            Command::Write(a) if a.null && a.batch.is_none() => {
                refused("-0 goes with --batch: the batch is NUL-separated")
            }
            Command::Write(a) if a.exact.is_some() && a.key_opt.is_none() && a.key.is_none() => {
                refused("-m goes with -k KEY")
            }
            Command::Write(a) if a.keep_newline && a.value.as_deref().is_none_or(|v| v != "-") => {
                refused(
                    "--keep-newline keeps the last newline of a value read from stdin (VALUE -), \
                     and none is",
                )
            }
            Command::Generate(_) if any_global => refused(
                "generate prints the man page or a completion script and takes no other options",
            ),
            Command::Write(_) | Command::Check(_) | Command::Generate(_) => None,
        }
    }
}

/// `--lock-timeout` when it is not given (its `default_value`).
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The directory of the pool files when `--pool-dir` is not given.
pub(crate) const POOL_DIR_ENV: &str = "HVKVP_POOL_DIR";

impl Global {
    /// `--pool-dir`, else `$HVKVP_POOL_DIR` unless empty, else the default.
    pub fn pool_dir(&self) -> PathBuf {
        let env = std::env::var_os(POOL_DIR_ENV).filter(|d| !d.is_empty());
        (self.pool_dir.clone().or(env.map(PathBuf::from))).unwrap_or(pool::DEFAULT_DIR.into())
    }

    /// The pool named by -p or -s, if any.
    pub fn pool(&self) -> Option<PoolId> {
        let by_keyset = [PoolId::EXTERNAL, PoolId::GUEST, PoolId::AUTO_EXTERNAL];
        self.pool.or(self.keyset.map(|k| by_keyset[k as usize]))
    }
}

/// hvkvp 2.0's key sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Keyset {
    /// Pool 0: host to guest.
    In,
    /// Pool 1: guest to host.
    Out,
    /// Pool 3: what the host tells about itself.
    Params,
}

impl Keyset {
    /// As hvkvp 2.0, the first letter in either case; but one that names no
    /// key set is refused, not read as `in`.
    fn parse(s: &str) -> Option<Keyset> {
        let i = "iop".find(s.chars().next()?.to_ascii_lowercase())?;
        Some(Keyset::value_variants()[i])
    }
}

/// Parses `-s` as [`Keyset::parse`] does, with clap's message and possible
/// values (for `--help`, the man page and completions).
#[derive(Debug, Clone)]
struct KeysetParser;

impl TypedValueParser for KeysetParser {
    type Value = Keyset;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Keyset, clap::Error> {
        (value.to_str().and_then(Keyset::parse))
            .map_or_else(|| EnumValueParser::new().parse_ref(cmd, arg, value), Ok)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        let all = Keyset::value_variants();
        Some(Box::new(all.iter().filter_map(Keyset::to_possible_value)))
    }
}

/// `-m on|off`: `on` matches the whole key, `off` any part of it.
// No docs on the variants: `--help` would show them.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// The verbs. clap builds a verb's options only when the command line names it
/// (`Command::defer`); [`verb`] builds one for the man page and completions.
#[derive(Debug)]
pub enum Command {
    /// `hvkvp read`
    Read(ReadArgs),
    /// `hvkvp write`
    Write(WriteArgs),
    /// `hvkvp delete`
    Delete(DeleteArgs),
    /// `hvkvp check`
    Check(CheckArgs),
    /// `hvkvp generate`
    Generate(GenerateArgs),
}

/// The verbs' names; the last, without examples, is hidden.
const VERBS: [&str; 5] = ["read", "write", "delete", "check", "generate"];

/// A verb as clap knows it before its options are built.
fn verb_shell(name: &'static str) -> clap::Command {
    let about = match name {
        "read" => "Print records: all of a pool, one key's value, or keys matching -k",
        "write" => "Set a key in pool 1, updating it in place or adding it at the end",
        "delete" => "Delete records from pool 1",
        "check" => "Report what is wrong with the pool files (exit 1 if anything is)",
        _ => "Print the man page or a shell completion script",
    };
    let hidden = examples::of_verb(name).is_none();
    clap::Command::new(name).about(about).hide(hidden)
}

/// A verb's options and examples added (`about` kept: the derive sets the struct's doc
/// comment). `generate` hides the options every verb takes.
fn verb_options(c: clap::Command) -> clap::Command {
    let about = c.get_about().cloned().unwrap_or_default();
    let c = match c.get_name() {
        "read" => ReadArgs::augment_args(c),
        "write" => WriteArgs::augment_args(c),
        "delete" => DeleteArgs::augment_args(c),
        "check" => CheckArgs::augment_args(c),
        _ => GenerateArgs::augment_args(c),
    }
    .about(about);
    match examples::of_verb(c.get_name()) {
        Some(e) => c.after_help(e.0),
        None => c.mut_args(|a| if a.is_global_set() { a.hide(true) } else { a }),
    }
}

/// The verb `name` with its options.
pub fn verb(name: &str) -> Option<clap::Command> {
    let name = VERBS.into_iter().find(|&v| v == name)?;
    Some(verb_options(verb_shell(name)))
}

impl clap::Subcommand for Command {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        cmd.subcommands(VERBS.iter().map(|v| verb_shell(v).defer(verb_options)))
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        VERBS.contains(&name)
    }
}

impl FromArgMatches for Command {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut m.clone())
    }

    fn from_arg_matches_mut(m: &mut clap::ArgMatches) -> Result<Self, clap::Error> {
        let Some((name, mut m)) = m.remove_subcommand() else {
            return Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand));
        };
        let m = &mut m;
        Ok(match name.as_str() {
            "read" => Command::Read(ReadArgs::from_arg_matches_mut(m)?),
            "write" => Command::Write(WriteArgs::from_arg_matches_mut(m)?),
            "delete" => Command::Delete(DeleteArgs::from_arg_matches_mut(m)?),
            "check" => Command::Check(CheckArgs::from_arg_matches_mut(m)?),
            _ => Command::Generate(GenerateArgs::from_arg_matches_mut(m)?),
        })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

/// How -k is matched (shared by read and delete).
#[derive(Debug, Args)]
pub struct MatchArgs {
    /// Whole key (on) or substring (off). Default: off for read, on for delete.
    #[arg(
        short = 'm',
        long = "exactmatch",
        visible_alias = "matchexact",
        value_name = "on|off"
    )]
    pub exact: Option<OnOff>,

    /// Ignore upper/lower case.
    #[arg(short = 'i', long = "ignorecase")]
    pub ignore_case: bool,

    /// Act on the keys that do NOT match -k.
    #[arg(short = 'n', long = "invertmatch")]
    pub invert: bool,

    /// Treat -k PATTERN as a regular expression (Rust regex syntax: `.` is one
    /// character, never a newline; -i folds Unicode case).
    #[arg(short = 'E', long = "regex", requires = "pattern")]
    pub regex: bool,
}

/// `-x` (read, write, delete).
const NOOUT: &str = "Print nothing on stdout, as -q; hvkvp 2.0's spelling, which also stops the \
                     pool listing after a 2.0-form write or delete";

/// `hvkvp read`.
#[derive(Debug, Args)]
// `mut_arg` also moves an option last, where the completion scripts have always listed it.
#[command(mut_arg("all_pools", |a| a.help(
    "Read every pool file that exists; each record is prefixed with its pool. \
     One that cannot be read is named, the others printed: exit 3"
)))]
#[command(mut_arg("invert", |a| a.conflicts_with("key")))]
pub struct ReadArgs {
    /// Print the value of exactly this key (case-sensitive).
    #[arg(conflicts_with = "pattern")]
    pub key: Option<OsString>,

    /// Print `key: value` for every key containing PATTERN (2.0 style).
    #[arg(short = 'k', long = "key", allow_hyphen_values = true)]
    pub pattern: Option<OsString>,

    /// How `-k` is matched.
    #[command(flatten)]
    pub matching: MatchArgs,

    /// `-a`: its help is set above.
    #[arg(short = 'a', long, conflicts_with_all = ["pool", "keyset"])]
    pub all_pools: bool,

    /// Output: kv (key: value), value, json. Default: value for KEY, kv otherwise.
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<Format>,

    /// End every field with NUL instead of ": " and newline; bytes untouched.
    #[arg(short = '0', long = "null")]
    pub null: bool,

    /// `-x`.
    #[arg(short = 'x', long, help = NOOUT)]
    pub noout: bool,

    /// With KEY: if it is absent, wait until it appears (at most SECS
    /// seconds, written --wait=SECS; default: for ever), then print it.
    /// Exit 1 on timeout. A pool directory not made yet is waited for too,
    /// but for /var/lib/hyperv on a machine that is not a Hyper-V guest.
    #[arg(
        long,
        value_name = "SECS",
        require_equals = true,
        default_missing_value = "inf",
        value_parser = parse_wait,
        requires = "key"
    )]
    pub wait: Option<Option<Duration>>,

    /// With KEY: if it is absent, put KEY.0, KEY.1, … back together (the
    /// chunks `write --split` and Ignition write). A chunk missing, or
    /// chunks of two values (a split killed midway), print nothing: exit 1.
    #[arg(long, requires = "key")]
    pub join: bool,
}

/// `hvkvp write`.
#[derive(Debug, Args)]
#[command(mut_arg("force", |a| a.help(
    "Write to a pool other than 1, and lift the host's UTF-16 limits (never the \
     511/2047-byte field sizes)"
)))]
pub struct WriteArgs {
    /// The key to set (exact, case-sensitive).
    #[arg(conflicts_with = "key_opt")]
    pub key: Option<OsString>,

    /// The value; `-` reads it from stdin.
    #[arg(conflicts_with = "value_opt")]
    pub value: Option<OsString>,

    /// The key, 2.0 style; without -p or --force a 2.0 pattern: every key
    /// it matches is updated, or it is added.
    #[arg(
        short = 'k',
        long = "key",
        id = "key_opt",
        value_name = "KEY",
        allow_hyphen_values = true
    )]
    pub key_opt: Option<OsString>,

    /// The value, 2.0 style (absent: an empty value; `-`: the value `-`; as in 2.0).
    #[arg(
        short = 'v',
        long = "value",
        id = "value_opt",
        value_name = "VALUE",
        allow_hyphen_values = true
    )]
    pub value_opt: Option<OsString>,

    /// Accepted for older scripts: one trailing newline of a value from stdin is dropped anyway.
    #[arg(long, hide = true)]
    pub chomp: bool,

    /// With a value from stdin, keep every byte: without it one trailing
    /// newline is dropped, the one `read` prints after the value.
    #[arg(long, alias = "raw", conflicts_with = "chomp")]
    pub keep_newline: bool,

    /// Update a key that matches ignoring case, keeping its stored spelling.
    #[arg(short = 'i', long = "ignorecase")]
    pub ignore_case: bool,

    /// With -k: the whole key (on, the default) or every key containing it (off), as in 2.0.
    #[arg(
        short = 'm',
        long = "exactmatch",
        visible_alias = "matchexact",
        value_name = "on|off"
    )]
    pub exact: Option<OnOff>,

    /// `--force`: its help is set above.
    #[arg(long)]
    pub force: bool,

    /// `-x`.
    #[arg(short = 'x', long, help = NOOUT)]
    pub noout: bool,

    /// A value over the host's limits is written as chunks KEY.0, KEY.1, … each within them; chunks
    /// left from an older value are removed. A kill -9 while chunks are rewritten can leave chunks
    /// of both values: `read --join` and `check` then refuse them; write the value again.
    #[arg(long)]
    pub split: bool,

    /// Write many pairs under one lock: KEY=VALUE lines, the JSON that `read -o json` prints, or
    /// with -0 the pairs `read -0` prints. FILE `-` is stdin.
    #[arg(
        long,
        value_name = "FILE",
        value_hint = ValueHint::FilePath,
        conflicts_with_all = ["key", "value", "key_opt", "value_opt", "split", "ignore_case"]
    )]
    pub batch: Option<PathBuf>,

    /// With --batch: the input is NUL-separated key, value, key, value…
    #[arg(short = '0', long = "null", requires = "batch")]
    pub null: bool,
}

/// `hvkvp delete`.
#[derive(Debug, Args)]
#[command(mut_arg("force", |a| a.help("Delete from a pool other than 1")))]
#[command(mut_arg("invert", |a| a.requires("pattern")))]
pub struct DeleteArgs {
    /// Delete exactly this key (case-sensitive), however its value is stored: its record, and
    /// the chunks KEY.0, KEY.1, … of a long value (those `write --split` wrote; another
    /// program's when KEY has no record of its own).
    #[arg(conflicts_with = "pattern")]
    pub key: Option<OsString>,

    /// Delete keys matching PATTERN (exact unless -m off).
    #[arg(short = 'k', long = "key", allow_hyphen_values = true)]
    pub pattern: Option<OsString>,

    /// How `-k` is matched.
    #[command(flatten)]
    pub matching: MatchArgs,

    /// Keep only the last record of each key (the one the host keeps).
    #[arg(short = 'd', long = "cleanduplicates")]
    pub clean_duplicates: bool,

    /// Drop records the host cannot read (empty key, invalid UTF-8, no NUL)
    /// and a trailing partial record.
    #[arg(short = 'c', long = "cleaninvalid")]
    pub clean_invalid: bool,

    /// Empty the pool.
    #[arg(
        short = 'A',
        long = "all",
        visible_alias = "DELETE_ALL",
        conflicts_with_all = ["key", "pattern", "clean_duplicates", "clean_invalid"]
    )]
    pub all: bool,

    /// With -A: only if the pool was last written before this boot (what cloud-init does to
    /// pool 1 at boot, but under both locks). Exit 1 if it was not.
    #[arg(
        long,
        requires = "all",
        conflicts_with_all = ["key", "pattern", "clean_duplicates", "clean_invalid"]
    )]
    pub if_stale: bool,

    /// `--force`: its help is set above.
    #[arg(long)]
    pub force: bool,

    /// `-x`.
    #[arg(short = 'x', long, help = NOOUT)]
    pub noout: bool,
}

/// `hvkvp check`.
#[derive(Debug, Args)]
#[command(mut_arg("all_pools", |a| a.help(
    "Check every pool file that exists (the default without -p or -s). \
     One that cannot be read is named, the others reported: exit 3"
)))]
pub struct CheckArgs {
    /// `-a`: its help is set above.
    #[arg(short = 'a', long, conflicts_with_all = ["pool", "keyset"])]
    pub all_pools: bool,

    /// Output: text (a report for people) or json (one object per pool).
    #[arg(short = 'o', long, value_name = "FORMAT", default_value = "text")]
    pub output: CheckFormat,
}

/// `check -o`: `text` for people, `json` for programs.
// No docs on the variants: `--help` would show them.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
}

/// `hvkvp generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// What to print.
    pub what: Generated,
}

/// `hvkvp generate WHAT`: the man page, or a shell's completion script.
// No docs on the shells: `generate --help` would show them.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generated {
    /// The man page, roff.
    Man,
    Bash,
    Zsh,
    Fish,
}

/// The command line as clap parses it.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// `read --wait 3`: the seconds of `--wait` follow an `=` (`--wait` alone
/// is "for ever", and the next word the KEY), so a number after it is refused.
pub fn spaced_wait(args: &[OsString]) -> Option<String> {
    let words = args.iter().skip(1).map(|a| a.to_str().unwrap_or(""));
    let words: Vec<&str> = words.take_while(|&a| a != "--").collect();
    let read = words.iter().position(|&w| w == "read")?;
    let secs = words[read..].split(|&w| w == "--wait").nth(1)?.first()?;
    parse_secs(secs).ok()?;
    Some(format!(
        "--wait {secs}: write --wait={secs} to wait at most {secs} s (with a space, {secs} is \
         taken for the KEY); to wait for ever for a key named {secs}, write `read --wait -- {secs}`"
    ))
}

fn parse_wait(s: &str) -> Result<Duration, String> {
    if s == "inf" {
        return Ok(Duration::MAX);
    }
    parse_secs(s)
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = (s.parse()).map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("'{s}' is not a number of seconds (0 or more)"));
    }
    Ok(Duration::try_from_secs_f64(secs.min(1e9)).unwrap_or(Duration::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_after_the_verb() {
        let c = Cli::try_parse_from(["hvkvp", "read", "-p", "params", "--pool-dir", "/x"]).unwrap();
        assert_eq!(c.global.pool(), Some(PoolId::AUTO_EXTERNAL));
        assert_eq!(c.global.pool_dir(), PathBuf::from("/x"));
        let c = Cli::try_parse_from(["hvkvp", "-s", "out", "read"]).unwrap();
        assert_eq!(c.global.pool(), Some(PoolId::GUEST));
    }

    #[test]
    fn the_2_0_form_is_2_0_options_without_a_plain_key() {
        let form = |args: &[&str]| {
            let argv = ["hvkvp", "--pool-dir", "/x", "-q"].iter().chain(args);
            Cli::try_parse_from(argv).unwrap().is_2_0_form()
        };
        for args in [
            &["read"][..],
            &[
                "read", "-s", "params", "-k", "^Host", "-i", "-m", "off", "-n", "-x",
            ],
            &["read", "--keyset=o", "--key=a"],
            &[
                "write", "-k", "K", "-v", "V", "-s", "out", "-i", "-m", "off",
            ],
            &["write", "--key", "K"],
            &["delete", "-k", "K", "-n"],
            &["delete", "-d", "-c"],
            &["delete", "--DELETE_ALL", "-x"],
        ] {
            assert!(form(args), "{args:?} is in 2.0 form");
        }
        for args in [
            &["read", "K"][..],
            &["read", "-p", "3", "-k", "a"],
            &["read", "-k", "a", "-E"],
            &["read", "-k", "a", "-o", "kv"],
            &["read", "-a"],
            &["read", "-0"],
            &["write", "K", "V"],
            &["write", "-k", "K", "-v", "V", "--force"],
            &["write", "-k", "K", "-v", "V", "--split"],
            &["write", "-p", "1", "-k", "K", "-v", "V"],
            &["write", "--batch", "f"],
            &["write", "-i", "k", "v"],
            &["delete", "K"],
            &["delete", "-A", "--if-stale"],
            &["delete", "-p", "1", "-c"],
            &["delete", "-k", "a", "-E"],
            &["check"],
        ] {
            assert!(!form(args), "{args:?} is not in 2.0 form");
        }
    }

    #[test]
    fn keyset_takes_any_case_and_the_first_letter() {
        for (s, k) in [
            ("in", Keyset::In),
            ("I", Keyset::In),
            ("OUT", Keyset::Out),
            ("outbound", Keyset::Out),
            ("p", Keyset::Params),
            ("Param", Keyset::Params),
        ] {
            assert_eq!(Keyset::parse(s), Some(k), "{s}");
        }
        for s in ["", "x", "guest", "0"] {
            assert_eq!(Keyset::parse(s), None, "{s}");
        }
    }

    #[test]
    fn a_number_after_wait_with_a_space_is_caught_and_nothing_else() {
        let caught = |args: &[&str]| {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            spaced_wait(&args).is_some()
        };
        assert!(caught(&["hvkvp", "read", "Role", "--wait", "3"]));
        assert!(caught(&[
            "hvkvp", "-p", "0", "read", "--wait", "0.5", "Role"
        ]));
        assert!(!caught(&["hvkvp", "read", "Role", "--wait=3"]));
        assert!(!caught(&["hvkvp", "read", "--wait", "Role"]));
        assert!(!caught(&["hvkvp", "read", "--wait", "--", "3"]));
        assert!(!caught(&["hvkvp", "read", "--", "--wait", "3"]));
        assert!(!caught(&["hvkvp", "write", "--wait", "3"]));
    }

    #[test]
    fn lock_timeout_takes_fractions() {
        assert_eq!(parse_secs("0.5").unwrap(), Duration::from_millis(500));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
    }
}
