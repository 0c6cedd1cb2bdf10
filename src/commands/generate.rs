//! `hvkvp generate`: the man page and shell completions, from the clap
//! definitions and the examples of [`crate::examples`], so they cannot
//! drift from `--help`. `make install` and the packages run the freshly
//! built binary to produce them (no build.rs: a build script must not
//! write outside `OUT_DIR`).

use std::io::{self, Write};

use clap::builder::PossibleValuesParser;
use clap::{Command, CommandFactory, ValueHint};
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, line_break, roman, Roff};
use clap_mangen::Man;

use crate::cli::{Cli, GenerateArgs, Generated};
use crate::error::{Error, Exit};
use crate::examples::{self, Examples};
use crate::pool::PoolId;

/// Print the man page or a completion script on stdout.
pub fn run(a: &GenerateArgs) -> Result<Exit, Error> {
    let text = match a.what {
        Generated::Man => man_page(),
        Generated::Bash => completion(Shell::Bash),
        Generated::Zsh => completion(Shell::Zsh),
        Generated::Fish => completion(Shell::Fish),
    };
    // Rendered in memory first: clap_complete panics on a write error, and a
    // closed pipe must stay an ordinary error (exit 0, quietly).
    let mut out = io::stdout().lock();
    out.write_all(&text)
        .and_then(|()| out.flush())
        .map_err(Error::Output)?;
    Ok(Exit::Success)
}

const BIN: &str = "hvkvp";

/// Everything `-p` accepts, offered by the completions.
const POOL_NAMES: [&str; 13] = [
    "0",
    "1",
    "2",
    "3",
    "4",
    "external",
    "in",
    "guest",
    "out",
    "auto",
    "auto-external",
    "params",
    "auto-internal",
];

/// The command line as users see it. clap cannot drop a subcommand and
/// clap_complete would offer hidden ones, so the root is rebuilt around the
/// visible verbs: `generate` stays out of the completions and the man page.
fn public_command() -> Command {
    let full = Cli::command();
    let mut cmd = Command::new(BIN)
        .args(full.get_arguments().cloned())
        .subcommands(
            full.get_subcommands()
                .filter(|s| !s.is_hide_set())
                .filter_map(|s| crate::cli::verb(s.get_name())),
        )
        .subcommand_required(full.is_subcommand_required_set())
        .subcommand_value_name("COMMAND");
    if full.get_version().is_some() {
        cmd = cmd.version(env!("CARGO_PKG_VERSION"));
    }
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    if let Some(long) = full.get_long_about() {
        cmd = cmd.long_about(long.clone());
    }
    if let Some(after) = full.get_after_help() {
        cmd = cmd.after_help(after.clone());
    }
    cmd
}

/// Hints that only matter to a shell: what to offer after `-p`, and which
/// options take a directory or a file. `-p` itself parses with
/// `PoolId::parse`, which the unit test below holds this list to.
fn completion(shell: Shell) -> Vec<u8> {
    let mut cmd = public_command()
        .mut_arg("pool", |a| {
            a.value_parser(PossibleValuesParser::new(POOL_NAMES))
        })
        .mut_arg("pool_dir", |a| a.value_hint(ValueHint::DirPath))
        .mut_subcommand("write", |w| {
            w.mut_arg("batch", |a| a.value_hint(ValueHint::FilePath))
        });
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut buf);
    buf
}

/// The page: clap_mangen renders what clap knows (name, synopses,
/// descriptions, options); the sections clap has no notion of (commands as
/// one page, exit status, files, environment, examples) are written here.
fn man_page() -> Vec<u8> {
    let root = public_command();
    let man = Man::new(root.clone());
    let mut page = Page::default();

    page.title();
    page.mangen(false, |w| man.render_name_section(w));
    page.heading("SYNOPSIS");
    page.roff(&synopsis(&root));
    page.mangen(false, |w| man.render_description_section(w));

    page.heading("OPTIONS");
    page.roff(Roff::new().text([roman(
        "These options are taken by every command, before or after it.",
    )]));
    page.mangen(true, |w| man.render_options_section(w));

    page.heading("COMMANDS");
    for verb in verbs(&root) {
        let name = format!("{} {}", root.get_name(), verb.get_name());
        let examples = examples::of_verb(verb.get_name());
        // A verb rendered on its own still needs the global options its
        // conflicts name; hidden, they stay in the OPTIONS section above.
        let globals = root.get_arguments().filter(|a| a.is_global_set());
        let about = verb.get_about().map(|a| sentence(&a.to_string()));
        let verb = verb
            .about(about.unwrap_or_default())
            .args(globals.map(|a| a.clone().hide(true)))
            .bin_name(&name)
            .disable_help_flag(true);
        let sub = Man::new(verb);
        page.roff(Roff::new().control("SS", [name.as_str()]));
        page.mangen(true, |w| sub.render_synopsis_section(w));
        page.roff(Roff::new().control("PP", []));
        page.mangen(true, |w| sub.render_description_section(w));
        page.mangen(true, |w| sub.render_options_section(w));
        if let Some(ex) = examples.filter(|e| !e.list.is_empty()) {
            let mut r = Roff::new();
            r.control("PP", []).text([italic("Examples:")]);
            page.roff(&r);
            page.roff(&example_list(ex));
        }
    }

    page.heading("HVKVP 2.0 COMMAND LINES");
    page.roff(&compatibility());
    page.heading("EXIT STATUS");
    page.roff(&exit_status());
    page.heading("FILES");
    page.roff(&files());
    page.heading("ENVIRONMENT");
    page.roff(&environment());
    page.heading("EXAMPLES");
    page.roff(&example_list(&examples::MAIN));
    page.heading("SEE ALSO");
    page.roff(&see_also());
    page.finish()
}

/// The visible verbs, as declared (before clap adds `help`).
fn verbs(root: &Command) -> Vec<Command> {
    root.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect()
}

/// One line per verb, e.g. `hvkvp write [options] [KEY] [VALUE]`: the
/// shape of each command; its own section lists the options.
fn synopsis(root: &Command) -> Roff {
    let mut r = Roff::new();
    for (i, verb) in verbs(root).iter().enumerate() {
        let mut line = Vec::new();
        if i > 0 {
            line.push(line_break());
        }
        line.extend([
            bold(root.get_name()),
            roman(" "),
            bold(verb.get_name()),
            roman(" ["),
            italic("options"),
            roman("]"),
        ]);
        for pos in verb.get_positionals() {
            let name = pos
                .get_value_names()
                .map(|v| v.join(" "))
                .unwrap_or_else(|| pos.get_id().to_string());
            let (open, close) = if pos.is_required_set() {
                ("", "")
            } else {
                ("[", "]")
            };
            line.extend([roman(format!(" {open}")), italic(name), roman(close)]);
        }
        r.text(line);
    }
    r
}

/// clap drops the full stop of a one-line help; prose wants it back.
fn sentence(s: &str) -> String {
    let s = s.trim();
    if s.ends_with(['.', '!', '?']) {
        s.to_owned()
    } else {
        format!("{s}.")
    }
}

/// Each example as a tagged paragraph: the command in bold, then what it
/// does, as a sentence.
fn example_list(examples: &Examples) -> Roff {
    let mut r = Roff::new();
    for &(cmd, what) in examples.list {
        r.control("TP", []).text([bold(cmd)]);
        if !what.is_empty() {
            let mut what = what.to_owned();
            if let Some(c) = what.get(..1) {
                let up = c.to_uppercase();
                what.replace_range(..1, &up);
            }
            r.text([roman(sentence(&what))]);
        }
    }
    r
}

/// What a command line in hvkvp 2.0's form does (`cli::Cli::is_2_0_form`).
fn compatibility() -> Roff {
    let mut r = Roff::new();
    for text in [
        "A command line that names no key or value as a plain argument and uses only \
         options hvkvp 2.0 had (-k, -v, -s, -m, -n, -i, -x, -c, -d, -A and their long \
         forms, besides --pool-dir, --lock-timeout and -q) behaves as in hvkvp 2.0, so \
         that scripts written for it keep working:",
        "write and delete print the resulting pool as key: value lines (not with -x or \
         -q); nothing matched is exit 0; -s takes in, out and params in any case, or \
         their first letter; -k is a 2.0 pattern: POSIX basic syntax, or ECMAScript \
         with -i, matching the whole key with -m on (the default of write and delete) \
         and any part of it with -m off (the default of read), byte by byte as 2.0 \
         did (. is one byte, -i folds ASCII letters only), and one that 2.0 could not \
         compile (such as [[:digt:]]) exits 2; write -m off sets every \
         key containing the text, or adds it; read -n without -k lists the pool; \
         write -v - stores a dash.",
        "Any other argument or option (a plain KEY, -p, -o, -E, -a, --force, ...) makes \
         the line modern: keys are literal text, nothing is printed after a change, and \
         nothing matched is exit 1.",
    ] {
        r.control("PP", []).text([roman(text)]);
    }
    r
}

/// The EXIT STATUS section, with the numbers taken from the one type that maps outcomes to
/// exit codes.
fn exit_status() -> Roff {
    let mut r = Roff::new();
    let rows = [
        (
            Exit::Success,
            "Success: the pool holds exactly what the command asked for, nothing more \
             and nothing less. For read: at least one record was printed (for a 2.0 \
             command line, also none).",
        ),
        (
            Exit::NoMatch,
            "Nothing matched (not for a 2.0 command line: exit 0, as in 2.0), the key \
             was not found, read --wait timed out, delete -A --if-stale found the pool \
             fresh, or check found problems. The pool is byte for byte unchanged, its \
             mtime included.",
        ),
        (
            Exit::Usage,
            "Usage or input error (a bad option, an option with nothing to act on, a \
             key or value over the limits, a refused pool): the pool is unchanged.",
        ),
        (
            Exit::Environment,
            "Environment or I/O error: missing pool directory (KVP daemon not \
             installed or not running), permission denied, lock timeout, a \
             corrupt, hard-linked or non-regular pool file refused, a pool file \
             replaced while hvkvp waited for its lock. The pool is unchanged, \
             unless another program changed the file during the change (emptied, \
             appended to or renamed over it without a lock): then hvkvp stops \
             before writing more, says what it found, and the next change heals \
             the pool.",
        ),
    ];
    for (code, text) in rows {
        r.control("TP", []).text([bold((code as u8).to_string())]);
        r.text([roman(text)]);
    }
    r.control("PP", []).text([roman(
        "A closed pipe (hvkvp read | head -1) is not an error: exit 0, no message.",
    )]);
    r
}

/// What each pool is for (`enum hv_kvp_exchg_pool`, include/uapi/linux/hyperv.h).
fn pool_purpose(id: PoolId) -> &'static str {
    match id.number() {
        0 => "external (hvkvp 2.0: in): host to guest, set by the host administrator. Default for read.",
        1 => "guest (hvkvp 2.0: out): guest to host, the only pool the host reads back. \
              Default for write and delete; the other pools are refused without --force.",
        2 => "auto: facts about the guest (its name, OS version, IP addresses) that the \
              daemon answers itself.",
        3 => "auto-external (hvkvp 2.0: params): what the host tells about itself and the VM \
              (host name, VM name and id).",
        _ => "auto-internal: unused.",
    }
}

fn files() -> Roff {
    let dir = crate::pool::DEFAULT_DIR;
    let mut r = Roff::new();
    for id in PoolId::ALL {
        r.control("TP", [])
            .text([bold(format!("{dir}/{}", id.file_name()))]);
        r.text([roman(format!("Pool {}, {}", id.number(), pool_purpose(id)))]);
    }
    r.control("PP", []).text([roman(
        "Each file is a bare array of 2560-byte records: a 512-byte key then a \
         2048-byte value, each ending at its first NUL. The KVP daemon \
         (hv_kvp_daemon: the hypervkvpd service of hyperv-daemons, or \
         linux-cloud-tools) creates them when it starts. hvkvp changes them in \
         place, under both the flock(2) lock cloud-init takes and the fcntl(2) \
         lock the daemon takes.",
    )]);
    r
}

/// The variables hvkvp reads ([`crate::cli::ENVIRONMENT`]).
fn environment() -> Roff {
    let mut r = Roff::new();
    for (env, long, what) in crate::cli::ENVIRONMENT {
        r.control("TP", []).text([bold(env)]);
        r.text([
            roman(format!("{} The same as ", sentence(what))),
            bold(format!("--{long}")),
            roman(", which wins when both are given; set but empty, it is ignored."),
        ]);
    }
    r
}

fn see_also() -> Roff {
    let refs = [
        ("hv_kvp_daemon", "8"),
        ("cloud-init", "1"),
        ("flock", "2"),
        ("fcntl", "2"),
    ];
    let mut line = Vec::new();
    for (i, (name, section)) in refs.iter().enumerate() {
        let sep = if i + 1 < refs.len() { ", " } else { "" };
        line.push(bold(*name));
        line.push(roman(format!("({section}){sep}")));
    }
    let mut r = Roff::new();
    r.text(line);
    r
}

/// The page as it is put together. Every roff rendering starts with the
/// same apostrophe preamble; the page carries it once.
#[derive(Default)]
struct Page {
    body: String,
}

impl Page {
    fn preamble() -> String {
        Roff::new().render()
    }

    fn push(&mut self, rendered: &str) {
        let p = Self::preamble();
        self.body
            .push_str(rendered.strip_prefix(p.as_str()).unwrap_or(rendered));
    }

    /// Written here, not by clap_mangen: roff drops an empty argument, so
    /// its `.TH` with no date shifts the source into the date's place.
    fn title(&mut self) {
        self.body.push_str(&format!(
            ".TH {} 1 \"\" \"{BIN} {}\" \"User Commands\"\n",
            BIN.to_uppercase(),
            env!("CARGO_PKG_VERSION")
        ));
    }

    /// A clap_mangen section; with `nested`, without its own `.SH` line, to
    /// sit under a heading of ours. Help texts quote with backquotes, which
    /// read well on a terminal; a man page gets plain double quotes.
    fn mangen(&mut self, nested: bool, f: impl FnOnce(&mut dyn Write) -> io::Result<()>) {
        let mut buf = Vec::new();
        f(&mut buf).expect("writing to a Vec cannot fail");
        let text = String::from_utf8_lossy(&buf).replace('`', "\"");
        let p = Self::preamble();
        let mut text = text.strip_prefix(p.as_str()).unwrap_or(&text);
        if nested && text.starts_with(".SH ") {
            text = text.split_once('\n').map_or("", |(_, rest)| rest);
        }
        self.body.push_str(text);
    }

    fn roff(&mut self, r: &Roff) {
        self.push(&r.render());
    }

    fn heading(&mut self, title: &str) {
        self.roff(Roff::new().control("SH", [title]));
    }

    /// Help texts hold a few non-ASCII characters (…); troff reads bytes
    /// unless told the encoding, so each becomes a `\[uXXXX]` escape, which
    /// groff and mandoc both know.
    fn finish(self) -> Vec<u8> {
        let mut out = Self::preamble();
        for c in self.body.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
            }
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pool_name_completed_is_one_hvkvp_takes() {
        for name in POOL_NAMES {
            assert!(PoolId::parse(name).is_ok(), "{name}");
        }
        for id in PoolId::ALL {
            assert!(POOL_NAMES.contains(&id.name()), "{}", id.name());
        }
    }

    #[test]
    fn hidden_generate_is_left_out() {
        let cmd = public_command();
        assert!(cmd.find_subcommand("generate").is_none());
        assert!(cmd.find_subcommand("read").is_some());
    }
}
