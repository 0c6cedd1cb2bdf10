//! `hvkvp generate`: the man page and shell completions, from the clap definitions
//! and [`crate::examples`], so that they cannot drift from `--help`.

use std::io::{self, Write};

use clap::builder::{PossibleValuesParser, Resettable, StyledStr};
use clap::{Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, line_break, roman, Inline, Roff};
use clap_mangen::Man;

use crate::cli::{Cli, GenerateArgs, Generated};
use crate::commands::Ctx;
use crate::error::{Error, Exit};
use crate::examples::{self, Examples};
use crate::pool::PoolId;

/// Print the man page or a completion script on stdout.
pub fn run(ctx: &mut Ctx, a: &GenerateArgs) -> Result<Exit, Error> {
    let text = match a.what {
        Generated::Man => man_page(),
        Generated::Bash => completion(Shell::Bash),
        Generated::Zsh => completion(Shell::Zsh),
        Generated::Fish => completion(Shell::Fish),
    };
    // Rendered in memory first: clap_complete panics on a write error, and a
    // closed pipe must stay an ordinary error (exit 0, quietly).
    ctx.io.out.write_all(&text).map_err(Error::Output)?;
    ctx.io.out.flush().map_err(Error::Output)?;
    Ok(Exit::Success)
}

const BIN: &str = "hvkvp";

/// The command line as users see it: the root rebuilt around the visible
/// verbs, so that `generate` stays out of the completions and the man page.
fn public_command() -> Command {
    let full = Cli::command();
    let text = |s: Option<&StyledStr>| Resettable::from(s.cloned());
    let visible = full.get_subcommands().filter(|s| !s.is_hide_set());
    Command::new(BIN)
        .version(env!("CARGO_PKG_VERSION"))
        .about(text(full.get_about()))
        .long_about(text(full.get_long_about()))
        .after_help(text(full.get_after_help()))
        .args(full.get_arguments().cloned())
        .subcommands(visible.filter_map(|s| crate::cli::verb(s.get_name())))
        .subcommand_required(true)
        .subcommand_value_name("COMMAND")
}

/// A completion script, offering what `-p` takes.
fn completion(shell: Shell) -> Vec<u8> {
    let pools = PossibleValuesParser::new(examples::POOL_NAMES.split(' '));
    let mut cmd = public_command().mut_arg("pool", |a| a.value_parser(pools));
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut buf);
    buf
}

/// The page: clap_mangen renders what clap knows; the other sections come
/// from [`crate::examples`].
fn man_page() -> Vec<u8> {
    let root = public_command();
    let man = Man::new(root.clone());
    // Written here, not by clap_mangen: roff drops an empty argument, so its `.TH` with no date
    // shifts the source into the date's place.
    let (name, version) = (BIN.to_uppercase(), env!("CARGO_PKG_VERSION"));
    let mut page = Page::default();
    page.body += &format!(".TH {name} 1 \"\" \"{BIN} {version}\" \"User Commands\"\n");

    page.mangen(false, |w| man.render_name_section(w));
    page.roff.control("SH", ["SYNOPSIS"]);
    for (i, verb) in root.get_subcommands().enumerate() {
        // One line per verb, e.g. `hvkvp write [options] [KEY] [VALUE]` (every positional is
        // optional): the shape of each command; its own section lists the options.
        let mut line: Vec<_> = (i > 0).then(line_break).into_iter().collect();
        line.extend([bold(BIN), roman(" "), bold(verb.get_name())]);
        line.extend([roman(" ["), italic("options"), roman("]")]);
        for pos in verb.get_positionals() {
            let name = pos.get_value_names().expect("named").join(" ");
            line.extend([roman(" ["), italic(name), roman("]")]);
        }
        page.roff.text(line);
    }
    page.mangen(false, |w| man.render_description_section(w));

    page.roff.control("SH", ["OPTIONS"]);
    page.roff.text([roman(examples::OPTIONS)]);
    page.mangen(true, |w| man.render_options_section(w));

    page.roff.control("SH", ["COMMANDS"]);
    // A verb rendered on its own still needs the global options its conflicts name; hidden,
    // they stay in the OPTIONS section above.
    let globals = root.get_arguments().filter(|a| a.is_global_set());
    let hidden: Vec<_> = globals.map(|a| a.clone().hide(true)).collect();
    for verb in root.get_subcommands() {
        let name = format!("{BIN} {}", verb.get_name());
        let about = sentence(&verb.get_about().expect("an about").to_string());
        let sub = verb.clone().about(about).args(hidden.clone());
        let sub = Man::new(sub.bin_name(&name).disable_help_flag(true));
        page.roff.control("SS", [name.as_str()]);
        page.mangen(true, |w| sub.render_synopsis_section(w));
        page.roff.control("PP", []);
        page.mangen(true, |w| sub.render_description_section(w));
        page.mangen(true, |w| sub.render_options_section(w));
        if let Some(ex) = examples::of_verb(verb.get_name()) {
            page.roff.control("PP", []).text([italic("Examples:")]);
            example_list(&mut page, ex);
        }
    }

    page.roff.control("SH", ["HVKVP 2.0 COMMAND LINES"]);
    examples::COMPATIBILITY.iter().for_each(|p| page.para(p));
    page.roff.control("SH", ["EXIT STATUS"]);
    for (code, text) in examples::EXIT_STATUS {
        page.item(bold((code as u8).to_string()), [roman(text)]);
    }
    page.para(examples::CLOSED_PIPE);
    page.roff.control("SH", ["FILES"]);
    for (id, what) in PoolId::ALL.into_iter().zip(examples::POOLS) {
        let path = format!("{}/{}", crate::pool::DEFAULT_DIR, id.file_name());
        page.item(bold(path), [roman(format!("Pool {}, {what}", id.number()))]);
    }
    page.para(examples::FILES);
    page.roff.control("SH", ["ENVIRONMENT"]);
    let [what, wins] = examples::ENVIRONMENT.map(roman);
    page.item(
        bold(crate::cli::POOL_DIR_ENV),
        [what, bold("--pool-dir"), wins],
    );
    page.roff.control("SH", ["EXAMPLES"]);
    example_list(&mut page, &examples::MAIN);
    page.roff.control("SH", ["SEE ALSO"]);
    let refs = examples::SEE_ALSO.map(|(name, after)| [bold(name), roman(after)]);
    page.roff.text(refs.concat());
    page.finish()
}

/// clap drops the full stop of a one-line help; prose wants it back.
fn sentence(s: &str) -> String {
    let s = s.trim();
    let stop = !s.ends_with(['.', '!', '?']);
    format!("{s}{}", if stop { "." } else { "" })
}

/// Each example as a tagged paragraph: the command in bold, then what it does, as a sentence.
fn example_list(page: &mut Page, examples: &Examples) {
    for (cmd, what) in examples.examples() {
        let what = what[..1].to_uppercase() + &what[1..];
        page.item(bold(cmd), [roman(sentence(&what))]);
    }
}

/// The page as it is put together: clap_mangen's sections as it renders
/// them, ours in `roff` until the next of clap_mangen's.
#[derive(Default)]
struct Page {
    body: String,
    roff: Roff,
}

impl Page {
    /// A clap_mangen section; with `nested`, without its own `.SH` line.
    /// Backquotes, which read well on a terminal, become double quotes.
    fn mangen(&mut self, nested: bool, f: impl FnOnce(&mut dyn Write) -> io::Result<()>) {
        self.body += &std::mem::take(&mut self.roff).render();
        let mut buf = Vec::new();
        f(&mut buf).expect("writing to a Vec cannot fail");
        let text = String::from_utf8_lossy(&buf).replace('`', "\"");
        let text = text.replacen(&Roff::new().render(), "", 1);
        let first_line = text.split_once('\n');
        let heading = first_line.filter(|(sh, _)| nested && sh.starts_with(".SH "));
        self.body += heading.map_or(&*text, |(_, rest)| rest);
    }

    fn para(&mut self, text: &str) {
        self.roff.control("PP", []).text([roman(text)]);
    }

    /// A tagged paragraph: the tag, then the text below it.
    fn item(&mut self, tag: Inline, text: impl Into<Vec<Inline>>) {
        self.roff.control("TP", []).text([tag]).text(text);
    }

    /// Every roff rendering's preamble once, and non-ASCII characters (…)
    /// as `\[uXXXX]` escapes, which groff and mandoc both know.
    fn finish(mut self) -> Vec<u8> {
        self.body += &self.roff.render();
        let preamble = Roff::new().render();
        let mut out = preamble.clone();
        let escape = |c: char| format!("\\[u{:04X}]", u32::from(c));
        for c in self.body.replace(&preamble, "").chars() {
            out += &if c.is_ascii() { c.into() } else { escape(c) };
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pool_name_completed_is_one_hvkvp_takes() {
        for name in examples::POOL_NAMES.split(' ') {
            assert!(PoolId::parse(name).is_ok(), "{name}");
        }
        for id in PoolId::ALL {
            let name = id.name();
            assert!(examples::POOL_NAMES.split(' ').any(|n| n == name), "{name}");
        }
    }

    #[test]
    fn hidden_generate_is_left_out() {
        let cmd = public_command();
        assert!(cmd.find_subcommand("generate").is_none());
        assert!(cmd.find_subcommand("read").is_some());
    }
}
