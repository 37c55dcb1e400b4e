//! Where each `${{ … }}` of a `run:` script sits in bash's quoting: a small lexer over the
//! script's literal text that follows quotes, `$'…'`, `$(…)`, `${…}`, arithmetic, backticks,
//! comments and here-documents, and gives every reference its [`Place`] — or a [`Why`] it
//! cannot be quoted there (refused at load time; see `Template::render_script` for how each
//! place is quoted).
//!
//! Bash itself is the reference; where this lexer cannot be sure of the context (a `case`
//! inside `$(…)`, a here-document delimiter built from a reference), every reference after
//! that point is refused rather than guessed.

use super::template::{Part, Template};

/// The quoting context of one reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Unquoted: a word, an argument, an assignment's value, inside `$(…)` or `<(…)`.
    Bare,
    /// Inside `"…"` (or `$"…"`).
    Double,
    /// Inside `'…'`.
    Single,
    /// Inside `$'…'`.
    AnsiC,
    /// In the body of a here-document whose delimiter is unquoted.
    Heredoc,
    /// In a comment.
    Comment,
}

/// Why a reference cannot be quoted where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Why {
    /// Right after a `\`, which would escape the quote tuna puts there.
    Escaped,
    /// Right after a `$`.
    AfterDollar,
    /// Inside `${…}`.
    ParamExpansion,
    /// Inside `$((…))`, `((…))` or `$[…]`: bash evaluates the text as arithmetic code.
    Arithmetic,
    /// Inside `` `…` ``.
    Backticks,
    /// In the body of a here-document whose delimiter is quoted (no expansion there at all).
    QuotedHeredoc,
    /// Inside an expansion (`$(…)`, `${…}`, `` `…` ``) in a here-document's body.
    HeredocExpansion,
    /// An argument of a command that runs its arguments as code (`eval`, `let`, `trap`).
    CodeArgument(String),
    /// An operand of an arithmetic comparison in `[[ … ]]` (`-eq`, `-lt`, …).
    ArithmeticTest,
    /// After a point where the context is no longer certain (the text says which).
    Uncertain(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tok {
    C(char),
    /// The n-th reference of the template.
    R(usize),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Close {
    Eof,
    Paren,
}

struct Heredoc {
    delim: String,
    strip_tabs: bool,
    quoted: bool,
}

/// Commands whose arguments bash runs as code.
const CODE_COMMANDS: [&str; 3] = ["eval", "let", "trap"];
/// `[[ … ]]` operators whose operands bash evaluates as arithmetic.
const ARITH_TESTS: [&str; 6] = ["-eq", "-ne", "-lt", "-le", "-gt", "-ge"];
/// Words after which the next word is still a command name.
const KEEP_COMMAND: [&str; 11] = [
    "if", "then", "else", "elif", "do", "while", "until", "!", "{", "time", "exec",
];

/// The place of every reference of `t`, in order.
pub(crate) fn places(t: &Template) -> Vec<Result<Place, Why>> {
    let mut toks = Vec::new();
    let mut n = 0;
    for p in &t.parts {
        match p {
            Part::Literal(s) => toks.extend(s.chars().map(Tok::C)),
            Part::Ref(_) => {
                toks.push(Tok::R(n));
                n += 1;
            }
        }
    }
    let mut lx = Lexer {
        toks,
        i: 0,
        out: vec![None; n],
        heredocs: Vec::new(),
        poisoned: None,
        code: None,
    };
    lx.commands(Close::Eof);
    lx.out
        .into_iter()
        .map(|p| p.unwrap_or(Ok(Place::Bare)))
        .collect()
}

struct Lexer {
    toks: Vec<Tok>,
    i: usize,
    out: Vec<Option<Result<Place, Why>>>,
    heredocs: Vec<Heredoc>,
    poisoned: Option<Why>,
    /// The command whose arguments (quoted or not, nested expansions included) run as code.
    code: Option<String>,
}

/// The command-level state of one `commands` level.
#[derive(Default)]
struct Words {
    word: String,
    in_word: bool,
    /// The next word names a command.
    not_cmd: bool,
    /// The enclosing command that runs its arguments as code (for `$(…)` inside one).
    outer: Option<String>,
    /// Inside `[[ … ]]`: the references seen, and whether an arithmetic operator was.
    test: Option<(Vec<usize>, bool)>,
    paren: usize,
}

impl Lexer {
    fn peek(&self, k: usize) -> Option<Tok> {
        self.toks.get(self.i + k).copied()
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.peek(0);
        self.i += 1;
        t
    }

    fn place(&mut self, r: usize, p: Place) {
        if self.out[r].is_none() {
            self.out[r] = Some(match (&self.poisoned, &self.code) {
                (Some(w), _) => Err(w.clone()),
                (None, Some(cmd)) => Err(Why::CodeArgument(cmd.clone())),
                (None, None) => Ok(p),
            });
        }
    }

    fn refuse(&mut self, r: usize, why: Why) {
        self.out[r] = Some(Err(why));
    }

    fn poison(&mut self, why: Why) {
        if self.poisoned.is_none() {
            self.poisoned = Some(why);
        }
    }

    /// A list of commands, up to the end or (for `$(…)`, `<(…)`) the closing `)`.
    fn commands(&mut self, close: Close) {
        let mut w = Words {
            outer: self.code.clone(),
            ..Words::default()
        };
        while let Some(t) = self.next() {
            let in_test = w.test.is_some();
            match t {
                Tok::R(r) => {
                    w.in_word = true;
                    w.word.push('\0');
                    if let Some((refs, _)) = &mut w.test {
                        refs.push(r);
                    }
                    self.place(r, Place::Bare);
                }
                Tok::C('\\') => match self.next() {
                    Some(Tok::R(r)) => {
                        w.in_word = true;
                        self.refuse(r, Why::Escaped);
                    }
                    Some(Tok::C('\n')) | None => {}
                    Some(Tok::C(c)) => {
                        w.in_word = true;
                        w.word.push(c);
                    }
                },
                Tok::C('\'') => {
                    w.in_word = true;
                    w.word.push('\'');
                    self.quoted(Place::Single);
                }
                Tok::C('"') => {
                    w.in_word = true;
                    w.word.push('"');
                    self.double();
                }
                Tok::C('`') => {
                    w.in_word = true;
                    self.backticks();
                }
                Tok::C('$') => {
                    w.in_word = true;
                    w.word.push('$');
                    self.dollar(false);
                }
                Tok::C('#') if !w.in_word => self.comment(),
                Tok::C('\n') => {
                    self.end_command(&mut w, close);
                    self.read_heredocs();
                }
                Tok::C(' ' | '\t') => self.end_word(&mut w, close),
                Tok::C(';' | '&' | '|') if !in_test => self.end_command(&mut w, close),
                Tok::C('<') if !in_test => {
                    self.end_word(&mut w, close);
                    match (self.peek(0), self.peek(1)) {
                        (Some(Tok::C('<')), Some(Tok::C('<'))) => self.i += 2,
                        (Some(Tok::C('<')), _) => {
                            self.i += 1;
                            self.heredoc_operator();
                        }
                        (Some(Tok::C('(')), _) => {
                            self.i += 1;
                            self.commands(Close::Paren);
                        }
                        _ => {}
                    }
                }
                Tok::C('>') if !in_test => {
                    self.end_word(&mut w, close);
                    if self.peek(0) == Some(Tok::C('(')) {
                        self.i += 1;
                        self.commands(Close::Paren);
                    }
                }
                Tok::C('(') if !in_test => {
                    if !w.not_cmd && !w.in_word && self.peek(0) == Some(Tok::C('(')) {
                        self.i += 1;
                        self.arithmetic(2, ')', '(');
                    } else {
                        self.end_command(&mut w, close);
                        w.paren += 1;
                    }
                }
                Tok::C(')') if !in_test => {
                    self.end_command(&mut w, close);
                    if w.paren > 0 {
                        w.paren -= 1;
                    } else if close == Close::Paren {
                        return;
                    }
                }
                Tok::C(c) if in_test && ";&|<>()".contains(c) => self.end_word(&mut w, close),
                Tok::C(c) => {
                    w.in_word = true;
                    w.word.push(c);
                }
            }
        }
        self.end_word(&mut w, close);
        self.code = w.outer.clone();
    }

    fn end_word(&mut self, w: &mut Words, close: Close) {
        if !w.in_word {
            return;
        }
        let word = std::mem::take(&mut w.word);
        w.in_word = false;
        if let Some((refs, arith)) = &mut w.test {
            if word == "]]" {
                if *arith {
                    for r in refs.clone() {
                        self.refuse(r, Why::ArithmeticTest);
                    }
                }
                w.test = None;
            } else if ARITH_TESTS.contains(&word.as_str()) {
                *arith = true;
            }
            return;
        }
        if w.not_cmd {
            return;
        }
        let assignment = word
            .split_once('=')
            .is_some_and(|(name, _)| !name.is_empty() && name.bytes().all(is_name_byte));
        match word.as_str() {
            _ if assignment => {}
            w2 if KEEP_COMMAND.contains(&w2) => {}
            w2 if CODE_COMMANDS.contains(&w2) => {
                self.code = Some(word.clone());
                w.not_cmd = true;
            }
            "[[" => w.test = Some((Vec::new(), false)),
            "case" if close == Close::Paren => self.poison(Why::Uncertain(
                "a `case` inside `$(…)` (its patterns' `)` make the end of `$(…)` uncertain)"
                    .into(),
            )),
            _ => w.not_cmd = true,
        }
    }

    fn end_command(&mut self, w: &mut Words, close: Close) {
        self.end_word(w, close);
        w.not_cmd = false;
        self.code = w.outer.clone();
    }

    /// After an opening `'`: up to the closing one; references inside are at `place`.
    fn quoted(&mut self, place: Place) {
        while let Some(t) = self.next() {
            match t {
                Tok::C('\'') => return,
                Tok::R(r) => self.place(r, place),
                Tok::C(_) => {}
            }
        }
    }

    /// After an opening `$'`: backslash escapes, up to the closing `'`.
    fn ansi_c(&mut self) {
        while let Some(t) = self.next() {
            match t {
                Tok::C('\'') => return,
                Tok::C('\\') => {
                    if let Some(Tok::R(r)) = self.next() {
                        self.refuse(r, Why::Escaped);
                    }
                }
                Tok::R(r) => self.place(r, Place::AnsiC),
                Tok::C(_) => {}
            }
        }
    }

    /// After an opening `"`: up to the closing one.
    fn double(&mut self) {
        while let Some(t) = self.next() {
            match t {
                Tok::C('"') => return,
                Tok::C('\\') => {
                    if let Some(Tok::R(r)) = self.next() {
                        self.refuse(r, Why::Escaped);
                    }
                }
                Tok::C('$') => self.dollar(true),
                Tok::C('`') => self.backticks(),
                Tok::R(r) => self.place(r, Place::Double),
                Tok::C(_) => {}
            }
        }
    }

    /// After a `$` (inside double quotes when `in_double`).
    fn dollar(&mut self, in_double: bool) {
        match (self.peek(0), self.peek(1)) {
            (Some(Tok::R(r)), _) => {
                self.i += 1;
                self.refuse(r, Why::AfterDollar);
            }
            (Some(Tok::C('$')), _) => self.i += 1,
            (Some(Tok::C('\'')), _) if !in_double => {
                self.i += 1;
                self.ansi_c();
            }
            (Some(Tok::C('"')), _) if !in_double => {
                self.i += 1;
                self.double();
            }
            (Some(Tok::C('(')), Some(Tok::C('('))) => {
                self.i += 2;
                self.arithmetic(2, ')', '(');
            }
            (Some(Tok::C('(')), _) => {
                self.i += 1;
                self.commands(Close::Paren);
            }
            (Some(Tok::C('[')), _) => {
                self.i += 1;
                self.arithmetic(1, ']', '[');
            }
            (Some(Tok::C('{')), _) => {
                self.i += 1;
                self.param_expansion();
            }
            _ => {}
        }
    }

    /// Arithmetic text up to `depth` unmatched `close`s; every reference inside is refused.
    fn arithmetic(&mut self, mut depth: usize, close: char, open: char) {
        while let Some(t) = self.next() {
            match t {
                Tok::C(c) if c == open => depth += 1,
                Tok::C(c) if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                Tok::R(r) => self.refuse(r, Why::Arithmetic),
                Tok::C(_) => {}
            }
        }
    }

    /// After `${`: up to the matching `}`; every reference inside is refused.
    fn param_expansion(&mut self) {
        let mut depth = 1;
        while let Some(t) = self.next() {
            match t {
                Tok::C('}') => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                Tok::C('$') if self.peek(0) == Some(Tok::C('{')) => {
                    self.i += 1;
                    depth += 1;
                }
                Tok::C('\\') => {
                    if let Some(Tok::R(r)) = self.next() {
                        self.refuse(r, Why::ParamExpansion);
                    }
                }
                Tok::C(q @ ('\'' | '"')) => {
                    while let Some(t) = self.next() {
                        match t {
                            Tok::C(c) if c == q => break,
                            Tok::C('\\') if q == '"' => {
                                if let Some(Tok::R(r)) = self.next() {
                                    self.refuse(r, Why::ParamExpansion);
                                }
                            }
                            Tok::R(r) => self.refuse(r, Why::ParamExpansion),
                            Tok::C(_) => {}
                        }
                    }
                }
                Tok::R(r) => self.refuse(r, Why::ParamExpansion),
                Tok::C(_) => {}
            }
        }
    }

    /// After an opening backtick: up to the closing one; every reference inside is refused.
    fn backticks(&mut self) {
        while let Some(t) = self.next() {
            match t {
                Tok::C('`') => return,
                Tok::C('\\') => {
                    if let Some(Tok::R(r)) = self.next() {
                        self.refuse(r, Why::Backticks);
                    }
                }
                Tok::R(r) => self.refuse(r, Why::Backticks),
                Tok::C(_) => {}
            }
        }
    }

    /// A comment, up to (not including) the end of its line.
    fn comment(&mut self) {
        while let Some(t) = self.peek(0) {
            match t {
                Tok::C('\n') => return,
                Tok::R(r) => self.place(r, Place::Comment),
                Tok::C(_) => {}
            }
            self.i += 1;
        }
    }

    /// After `<<`: an optional `-`, blanks, and the delimiter word (quoted if any part is).
    fn heredoc_operator(&mut self) {
        let strip_tabs = self.peek(0) == Some(Tok::C('-'));
        if strip_tabs {
            self.i += 1;
        }
        while matches!(self.peek(0), Some(Tok::C(' ' | '\t'))) {
            self.i += 1;
        }
        let (mut delim, mut quoted, mut bad) = (String::new(), false, false);
        while let Some(t) = self.peek(0) {
            match t {
                Tok::C(c) if " \t\n;&|()<>".contains(c) => break,
                Tok::R(r) => {
                    self.refuse(r, Why::Uncertain("a here-document delimiter".into()));
                    bad = true;
                }
                Tok::C(q @ ('\'' | '"')) => {
                    quoted = true;
                    self.i += 1;
                    while let Some(t) = self.peek(0) {
                        match t {
                            Tok::C(c) if c == q => break,
                            Tok::R(r) => {
                                self.refuse(r, Why::Uncertain("a here-document delimiter".into()));
                                bad = true;
                            }
                            Tok::C(c) => delim.push(c),
                        }
                        self.i += 1;
                    }
                }
                Tok::C('\\') => {
                    quoted = true;
                    if let Some(Tok::C(c)) = self.peek(1) {
                        delim.push(c);
                    }
                    self.i += 1;
                }
                Tok::C(c) => delim.push(c),
            }
            self.i += 1;
        }
        if bad || delim.is_empty() {
            self.poison(Why::Uncertain(
                "a here-document whose delimiter is not plain text".into(),
            ));
            return;
        }
        self.heredocs.push(Heredoc {
            delim,
            strip_tabs,
            quoted,
        });
    }

    /// At the start of a line after here-document operators: their bodies, in order. Bash
    /// finds a body's end line by line, before any expansion, and so does this.
    fn read_heredocs(&mut self) {
        for doc in std::mem::take(&mut self.heredocs) {
            // Closers of the expansions open in the body (they may span lines).
            let mut open: Vec<char> = Vec::new();
            while self.i < self.toks.len() {
                let start = self.i;
                while self.i < self.toks.len() && self.toks[self.i] != Tok::C('\n') {
                    self.i += 1;
                }
                let line: Vec<Tok> = self.toks[start..self.i].to_vec();
                self.i += 1; // the newline
                let text: Option<String> = line
                    .iter()
                    .map(|t| match t {
                        Tok::C(c) => Some(*c),
                        Tok::R(_) => None,
                    })
                    .collect();
                if let Some(text) = &text {
                    let text = if doc.strip_tabs {
                        text.trim_start_matches('\t')
                    } else {
                        text
                    };
                    if text == doc.delim {
                        break;
                    }
                }
                if doc.quoted {
                    for t in line {
                        if let Tok::R(r) = t {
                            self.refuse(r, Why::QuotedHeredoc);
                        }
                    }
                } else {
                    self.body_line(&line, &mut open);
                }
            }
        }
    }

    /// One line of an unquoted here-document's body: `\` escapes, `$(…)`, `${…}`, `$[…]` and
    /// backticks (references inside them are refused), references elsewhere in place.
    fn body_line(&mut self, line: &[Tok], open: &mut Vec<char>) {
        let mut j = 0;
        while j < line.len() {
            let t = line[j];
            j += 1;
            if let Some(&close) = open.last() {
                match t {
                    Tok::R(r) => self.refuse(r, Why::HeredocExpansion),
                    Tok::C('\\') => j += 1,
                    Tok::C(c) if c == close => {
                        open.pop();
                    }
                    Tok::C(q @ ('\'' | '"')) if close != '`' => {
                        while let Some(t) = line.get(j) {
                            j += 1;
                            match t {
                                Tok::R(r) => self.refuse(*r, Why::HeredocExpansion),
                                Tok::C(c) if *c == q => break,
                                Tok::C(_) => {}
                            }
                        }
                    }
                    Tok::C('$') => self.body_dollar(line, &mut j, open),
                    Tok::C('(') if close == ')' => open.push(')'),
                    Tok::C(_) => {}
                }
                continue;
            }
            match t {
                Tok::C('\\') => {
                    if let Some(Tok::R(r)) = line.get(j) {
                        self.refuse(*r, Why::Escaped);
                    }
                    j += 1;
                }
                Tok::C('$') => self.body_dollar(line, &mut j, open),
                Tok::C('`') => open.push('`'),
                Tok::R(r) => self.place(r, Place::Heredoc),
                Tok::C(_) => {}
            }
        }
    }

    /// After a `$` in a here-document body, at `line[*j]`.
    fn body_dollar(&mut self, line: &[Tok], j: &mut usize, open: &mut Vec<char>) {
        match line.get(*j) {
            Some(Tok::R(r)) => {
                self.refuse(*r, Why::AfterDollar);
                *j += 1;
            }
            Some(Tok::C('(')) => {
                open.push(')');
                *j += 1;
            }
            Some(Tok::C('{')) => {
                open.push('}');
                *j += 1;
            }
            Some(Tok::C('[')) => {
                open.push(']');
                *j += 1;
            }
            _ => {}
        }
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Why {
    /// Where the reference stands, for "cannot be quoted …" messages.
    pub(crate) fn message(&self) -> String {
        match self {
            Why::Escaped => "right after a `\\`, which would escape the quoting".into(),
            Why::AfterDollar => "right after a `$`".into(),
            Why::ParamExpansion => "inside `${…}`".into(),
            Why::Arithmetic => {
                "inside arithmetic (`$((…))`, `((…))`, `$[…]`), which bash evaluates as code".into()
            }
            Why::Backticks => "inside backticks".into(),
            Why::QuotedHeredoc => {
                "in a here-document with a quoted delimiter, which expands nothing".into()
            }
            Why::HeredocExpansion => "inside an expansion in a here-document".into(),
            Why::CodeArgument(cmd) => {
                format!("in the arguments of `{cmd}`, which runs them as code")
            }
            Why::ArithmeticTest => {
                "in a `[[ … ]]` with an arithmetic comparison, which evaluates its operands as code"
                    .into()
            }
            Why::Uncertain(after) => {
                format!("after {after}, where tuna cannot be sure of bash's quoting")
            }
        }
    }

    /// The safe way to write it instead; `var` is how the value can be read from the
    /// environment (`"$TUNA_PARAM_LR"`), when it can.
    pub(crate) fn help(&self, var: Option<&str>) -> String {
        let env = match var {
            Some(v) => format!("use the environment variable instead: `\"${v}\"`"),
            None => "assign it to a variable first (`v=${{ … }}` on its own line) and use `\"$v\"`"
                .into(),
        };
        match self {
            Why::Escaped | Why::AfterDollar => {
                format!("write the reference on its own, not after `\\` or `$`; or {env}")
            }
            Why::Backticks => format!("use `$(…)`, where references are quoted; or {env}"),
            Why::QuotedHeredoc => format!(
                "use an unquoted delimiter (`<<EOF`), where references are quoted; or {env} in an unquoted one"
            ),
            Why::Arithmetic | Why::ArithmeticTest | Why::CodeArgument(_) => {
                let v = var.unwrap_or("v");
                format!(
                    "here even a variable's value runs as code: check it first, e.g. `[[ ${v} =~ ^[0-9]+$ ]] || exit 1`, then use `${v}`{}",
                    if var.is_some() {
                        ""
                    } else {
                        " (after `v=${{ … }}` on its own line)"
                    }
                )
            }
            _ => env,
        }
    }
}
