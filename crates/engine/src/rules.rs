//! The rule language of placements (`filter`, `when`): expressions over item fields and the
//! request's context, parsed and type-checked once ([`compile`]) into a tree that is evaluated
//! per candidate without allocating ([`Rule::matches`]).
//!
//! ```text
//! expr       := or
//! or         := and ("||" and)*
//! and        := unary ("&&" unary)*
//! unary      := "!" unary | "(" expr ")" | comparison
//! comparison := operand [ ("==" | "!=" | "<" | "<=" | ">" | ">=") operand
//!                       | "in" "[" [literal ("," literal)*] "]"
//!                       | "contains" operand ]
//! operand    := field | string | number | true | false
//! ```
//!
//! Fields: `category` (string), `genres` (list of strings), `price` (number, in the item's
//! currency's major unit), `in_stock` (boolean), `age_days` (number), `attributes.<key>` (the
//! type the catalog's values have), `user.last_category` (string) and `context.<key>` (the
//! request's string, read as a number or boolean where compared with one). Strings are
//! written in double or single quotes. `a contains b` is membership for a list and substring
//! for a string; a list `in [..]` is true when the two share an element. A comparison with a
//! value an item lacks (no price, no such attribute) is false, except `!=`, which is true.

use crate::facts::{Attr, Facts, NO_SYMBOL, Type};

/// Why a rule was refused: where (1-based character position) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {position}: {message}")]
pub struct RuleError {
    pub position: usize,
    pub message: String,
}

fn fail<T>(position: usize, message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError {
        position,
        message: message.into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(Cmp),
    And,
    Or,
    Not,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    In,
    Contains,
    True,
    False,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Str(s) => format!("the string {s:?}"),
        Tok::Num(n) => format!("the number {n}"),
        Tok::Op(_) => "a comparison".into(),
        Tok::And => "`&&`".into(),
        Tok::Or => "`||`".into(),
        Tok::Not => "`!`".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::Comma => "`,`".into(),
        Tok::In => "`in`".into(),
        Tok::Contains => "`contains`".into(),
        Tok::True | Tok::False => "a boolean".into(),
        Tok::End => "the end of the rule".into(),
    }
}

/// Tokens with their 1-based character positions.
fn lex(src: &str) -> Result<Vec<(Tok, usize)>, RuleError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two = chars.get(i + 1).copied();
        let (tok, len) = match (c, two) {
            ('=', Some('=')) => (Tok::Op(Cmp::Eq), 2),
            ('!', Some('=')) => (Tok::Op(Cmp::Ne), 2),
            ('<', Some('=')) => (Tok::Op(Cmp::Le), 2),
            ('>', Some('=')) => (Tok::Op(Cmp::Ge), 2),
            ('&', Some('&')) => (Tok::And, 2),
            ('|', Some('|')) => (Tok::Or, 2),
            ('<', _) => (Tok::Op(Cmp::Lt), 1),
            ('>', _) => (Tok::Op(Cmp::Gt), 1),
            ('!', _) => (Tok::Not, 1),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('[', _) => (Tok::LBracket, 1),
            (']', _) => (Tok::RBracket, 1),
            (',', _) => (Tok::Comma, 1),
            ('=', _) => return fail(at, "expected `==` (a single `=` is not a comparison)"),
            ('&', _) => return fail(at, "expected `&&`"),
            ('|', _) => return fail(at, "expected `||`"),
            ('"' | '\'', _) => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => return fail(at, "this string is not closed"),
                        Some('\\') => {
                            match chars.get(j + 1) {
                                Some(&e) => s.push(e),
                                None => return fail(at, "this string is not closed"),
                            }
                            j += 2;
                        }
                        Some(&q) if q == c => break,
                        Some(&other) => {
                            s.push(other);
                            j += 1;
                        }
                    }
                }
                (Tok::Str(s), j + 1 - i)
            }
            (d, next)
                if d.is_ascii_digit() || (d == '-' && next.is_some_and(|n| n.is_ascii_digit())) =>
            {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                    j += 1;
                }
                let text: String = chars[i..j].iter().collect();
                match text.parse::<f64>() {
                    Ok(n) if n.is_finite() => (Tok::Num(n), j - i),
                    _ => return fail(at, format!("{text:?} is not a number")),
                }
            }
            (a, _) if a.is_alphabetic() || a == '_' => {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_alphanumeric() || matches!(chars[j], '_' | '.' | '-'))
                {
                    j += 1;
                }
                let word: String = chars[i..j].iter().collect();
                let tok = match word.as_str() {
                    "in" => Tok::In,
                    "contains" => Tok::Contains,
                    "true" => Tok::True,
                    "false" => Tok::False,
                    "and" | "or" | "not" => {
                        return fail(at, format!("write `&&`, `||` or `!`, not `{word}`"));
                    }
                    _ => Tok::Ident(word),
                };
                (tok, j - i)
            }
            (other, _) => return fail(at, format!("unexpected character {other:?}")),
        };
        out.push((tok, at));
        i += len;
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

/// An item field or request value a rule reads.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Category,
    Genres,
    Price,
    InStock,
    AgeDays,
    Attribute(String),
    LastCategory,
    Context(String),
}

/// A parsed operand, before type checking.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Field(Field, usize),
    Str(String, usize),
    Num(f64, usize),
    Bool(bool, usize),
}

impl Operand {
    fn position(&self) -> usize {
        match self {
            Operand::Field(_, p)
            | Operand::Str(_, p)
            | Operand::Num(_, p)
            | Operand::Bool(_, p) => *p,
        }
    }
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq)]
enum Ast {
    And(Box<Ast>, Box<Ast>),
    Or(Box<Ast>, Box<Ast>),
    Not(Box<Ast>),
    Cmp(Cmp, Operand, Operand),
    In(Operand, Vec<Operand>, usize),
    Contains(Operand, Operand),
    Truth(Operand),
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    at: usize,
    /// Parentheses and `!` open now (bounded, so no rule exhausts the stack).
    depth: usize,
}

/// The longest rule accepted, in characters.
pub(crate) const MAX_RULE_CHARS: usize = 4_000;
/// How deeply parentheses and `!` may nest.
const MAX_DEPTH: usize = 64;

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.at].0
    }

    fn pos(&self) -> usize {
        self.toks[self.at].1
    }

    fn next(&mut self) -> (Tok, usize) {
        let t = self.toks[self.at].clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    fn or(&mut self) -> Result<Ast, RuleError> {
        let mut left = self.and()?;
        while *self.peek() == Tok::Or {
            self.next();
            left = Ast::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Ast, RuleError> {
        let mut left = self.unary()?;
        while *self.peek() == Tok::And {
            self.next();
            left = Ast::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Ast, RuleError> {
        if matches!(self.peek(), Tok::Not | Tok::LParen) {
            if self.depth >= MAX_DEPTH {
                return fail(
                    self.pos(),
                    format!("parentheses and `!` nest at most {MAX_DEPTH} deep"),
                );
            }
            self.depth += 1;
            let inner = self.unary_inner();
            self.depth -= 1;
            return inner;
        }
        self.unary_inner()
    }

    fn unary_inner(&mut self) -> Result<Ast, RuleError> {
        match self.peek() {
            Tok::Not => {
                self.next();
                Ok(Ast::Not(Box::new(self.unary()?)))
            }
            Tok::LParen => {
                self.next();
                let inner = self.or()?;
                let (t, p) = self.next();
                if t != Tok::RParen {
                    return fail(p, format!("expected `)`, found {}", describe(&t)));
                }
                Ok(inner)
            }
            _ => self.comparison(),
        }
    }

    fn comparison(&mut self) -> Result<Ast, RuleError> {
        let left = self.operand()?;
        match self.peek().clone() {
            Tok::Op(op) => {
                self.next();
                Ok(Ast::Cmp(op, left, self.operand()?))
            }
            Tok::In => {
                let (_, at) = self.next();
                let (t, p) = self.next();
                if t != Tok::LBracket {
                    return fail(
                        p,
                        format!("expected `[` after `in`, found {}", describe(&t)),
                    );
                }
                let mut list = Vec::new();
                if *self.peek() == Tok::RBracket {
                    self.next();
                    return Ok(Ast::In(left, list, at));
                }
                loop {
                    let item = self.operand()?;
                    if let Operand::Field(_, p) = item {
                        return fail(p, "expected a string, number or boolean in the list");
                    }
                    list.push(item);
                    let (t, p) = self.next();
                    match t {
                        Tok::Comma => {}
                        Tok::RBracket => break,
                        _ => {
                            return fail(p, format!("expected `,` or `]`, found {}", describe(&t)));
                        }
                    }
                }
                Ok(Ast::In(left, list, at))
            }
            Tok::Contains => {
                self.next();
                Ok(Ast::Contains(left, self.operand()?))
            }
            _ => Ok(Ast::Truth(left)),
        }
    }

    fn operand(&mut self) -> Result<Operand, RuleError> {
        let (t, p) = self.next();
        Ok(match t {
            Tok::Str(s) => Operand::Str(s, p),
            Tok::Num(n) => Operand::Num(n, p),
            Tok::True => Operand::Bool(true, p),
            Tok::False => Operand::Bool(false, p),
            Tok::Ident(name) => Operand::Field(field(&name, p)?, p),
            other => {
                return fail(
                    p,
                    format!(
                        "expected a field, string, number or boolean, found {}",
                        describe(&other)
                    ),
                );
            }
        })
    }
}

/// The names a rule may read, for error messages.
const FIELDS: &str = "category, genres, price, in_stock, age_days, attributes.<key>, \
                      user.last_category, context.<key>";

fn field(name: &str, p: usize) -> Result<Field, RuleError> {
    let key = |prefix: &str| name.strip_prefix(prefix).filter(|k| !k.is_empty());
    Ok(match name {
        "category" => Field::Category,
        "genres" => Field::Genres,
        "price" => Field::Price,
        "in_stock" => Field::InStock,
        "age_days" => Field::AgeDays,
        "user.last_category" => Field::LastCategory,
        _ => {
            if let Some(k) = key("attributes.") {
                Field::Attribute(k.to_owned())
            } else if let Some(k) = key("context.") {
                Field::Context(k.to_owned())
            } else {
                return fail(
                    p,
                    format!("unknown field `{name}`; the fields are {FIELDS}"),
                );
            }
        }
    })
}

/// A compiled value source.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Category,
    Genres,
    Price,
    InStock,
    AgeDays,
    /// An attribute column (by index into [`Rule::attributes`]).
    Attribute(usize),
    /// A request value (slot into [`Env::values`]) read as this type.
    Slot(usize, Type),
    /// A string literal kept as text too (substring matches).
    Text(u32, Box<str>),
    Num(f64),
    Bool(bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Cmp(Cmp, Val, Val),
    InSyms(Val, Vec<u32>),
    InNums(Val, Vec<f64>),
    InBools(Val, Vec<bool>),
    Contains(Val, Val),
    Truth(Val),
}

/// A compiled rule: evaluate with [`Rule::matches`].
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    root: Node,
    /// The attribute keys it reads, by the index `Val::Attribute` holds.
    attributes: Vec<String>,
    /// The request values it reads (`user.last_category` as `""`... see [`Slot`]), by slot.
    pub(crate) slots: Vec<Slot>,
}

/// A request value a rule reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    LastCategory,
    Context(String),
}

/// A request value resolved once per request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotValue<'a> {
    pub(crate) text: Option<&'a str>,
    pub(crate) sym: u32,
    pub(crate) num: f64,
}

impl<'a> SlotValue<'a> {
    pub(crate) fn new(facts: &Facts, text: Option<&'a str>) -> Self {
        Self {
            text,
            sym: text.map_or(NO_SYMBOL, |t| facts.symbol(t)),
            num: text
                .and_then(|t| t.trim().parse::<f64>().ok())
                .unwrap_or(f64::NAN),
        }
    }
}

/// What a rule reads besides the item: the facts, the time and the request's values.
pub(crate) struct Env<'a> {
    pub(crate) facts: &'a Facts,
    pub(crate) now_ms: i64,
    pub(crate) values: &'a [SlotValue<'a>],
    /// The attribute columns the rule reads, resolved once.
    pub(crate) columns: Vec<&'a [Attr]>,
}

/// A value read for one item.
#[derive(Debug, Clone, Copy)]
enum V<'a> {
    Missing,
    Sym(u32),
    Text(u32, &'a str),
    Num(f64),
    Bool(bool),
    List(&'a [u32]),
}

/// Parses and type-checks `src` against the catalog facts.
pub(crate) fn compile(src: &str, facts: &Facts) -> Result<Rule, RuleError> {
    if src.trim().is_empty() {
        return fail(1, "the rule is empty");
    }
    if src.chars().count() > MAX_RULE_CHARS {
        return fail(
            MAX_RULE_CHARS + 1,
            format!("a rule is at most {MAX_RULE_CHARS} characters"),
        );
    }
    let mut parser = Parser {
        toks: lex(src)?,
        at: 0,
        depth: 0,
    };
    let ast = parser.or()?;
    if *parser.peek() != Tok::End {
        let p = parser.pos();
        return fail(
            p,
            format!(
                "expected `&&`, `||` or the end of the rule, found {}",
                describe(parser.peek())
            ),
        );
    }
    let mut c = Compiler {
        facts,
        attributes: Vec::new(),
        slots: Vec::new(),
    };
    let root = c.node(&ast)?;
    Ok(Rule {
        root,
        attributes: c.attributes,
        slots: c.slots,
    })
}

struct Compiler<'f> {
    facts: &'f Facts,
    attributes: Vec<String>,
    slots: Vec<Slot>,
}

impl Compiler<'_> {
    fn node(&mut self, ast: &Ast) -> Result<Node, RuleError> {
        Ok(match ast {
            Ast::And(a, b) => Node::And(Box::new(self.node(a)?), Box::new(self.node(b)?)),
            Ast::Or(a, b) => Node::Or(Box::new(self.node(a)?), Box::new(self.node(b)?)),
            Ast::Not(a) => Node::Not(Box::new(self.node(a)?)),
            Ast::Truth(o) => {
                let (v, t) = self.operand(o, Some(Type::Bool))?;
                if t != Type::Bool {
                    return fail(
                        o.position(),
                        format!("expected a condition (a boolean), found {}", t.name()),
                    );
                }
                Node::Truth(v)
            }
            Ast::Cmp(op, a, b) => {
                let ta = self.type_of(a)?;
                let tb = self.type_of(b)?;
                if ta == Some(Type::List) || tb == Some(Type::List) {
                    let at = if ta == Some(Type::List) { a } else { b };
                    return fail(
                        at.position(),
                        "a list cannot be compared; use `contains` or `in [..]`",
                    );
                }
                let want = match (ta, tb) {
                    (None, None) => Type::Str,
                    (Some(t), None) | (None, Some(t)) => t,
                    (Some(x), Some(y)) if x == y => x,
                    (Some(x), Some(y)) => {
                        return fail(
                            b.position(),
                            format!(
                                "expected {} to compare with the left side, found {}",
                                x.name(),
                                y.name()
                            ),
                        );
                    }
                };
                if !matches!(op, Cmp::Eq | Cmp::Ne) && want != Type::Num {
                    return fail(
                        a.position(),
                        format!(
                            "`<`, `<=`, `>` and `>=` compare numbers, not {}",
                            want.name()
                        ),
                    );
                }
                let (va, _) = self.operand(a, Some(want))?;
                let (vb, _) = self.operand(b, Some(want))?;
                Node::Cmp(*op, va, vb)
            }
            Ast::In(left, list, at) => {
                let first = list.first().map(|o| self.type_of(o)).transpose()?.flatten();
                let tl = self.type_of(left)?;
                let element = match (tl, first) {
                    (Some(Type::List), _) => Type::Str,
                    (Some(t), _) => t,
                    (None, Some(t)) => t,
                    (None, None) => Type::Str,
                };
                for o in list {
                    let t = self.type_of(o)?.unwrap_or(element);
                    if t != element {
                        return fail(
                            o.position(),
                            format!(
                                "expected {} in this list, found {}",
                                element.name(),
                                t.name()
                            ),
                        );
                    }
                }
                let want = if tl == Some(Type::List) {
                    Type::List
                } else {
                    element
                };
                let (v, _) = self.operand(left, Some(want))?;
                match element {
                    Type::Str => Node::InSyms(
                        v,
                        list.iter()
                            .map(|o| match o {
                                Operand::Str(s, _) => self.facts.symbol(s),
                                _ => NO_SYMBOL,
                            })
                            .collect(),
                    ),
                    Type::Num => Node::InNums(
                        v,
                        list.iter()
                            .filter_map(|o| match o {
                                Operand::Num(n, _) => Some(*n),
                                _ => None,
                            })
                            .collect(),
                    ),
                    Type::Bool => Node::InBools(
                        v,
                        list.iter()
                            .filter_map(|o| match o {
                                Operand::Bool(b, _) => Some(*b),
                                _ => None,
                            })
                            .collect(),
                    ),
                    Type::List => return fail(*at, "a list cannot hold lists"),
                }
            }
            Ast::Contains(a, b) => {
                let ta = self.type_of(a)?.unwrap_or(Type::Str);
                if !matches!(ta, Type::List | Type::Str) {
                    return fail(
                        a.position(),
                        format!(
                            "`contains` needs a list or a string on its left, found {}",
                            ta.name()
                        ),
                    );
                }
                if let Some(tb) = self.type_of(b)?
                    && tb != Type::Str
                {
                    return fail(
                        b.position(),
                        format!("expected a string after `contains`, found {}", tb.name()),
                    );
                }
                let (va, _) = self.operand(a, Some(ta))?;
                let (vb, _) = self.operand(b, Some(Type::Str))?;
                Node::Contains(va, vb)
            }
        })
    }

    /// The operand's own type; `None` for a request value, which takes the other side's.
    fn type_of(&self, o: &Operand) -> Result<Option<Type>, RuleError> {
        Ok(Some(match o {
            Operand::Str(..) => Type::Str,
            Operand::Num(..) => Type::Num,
            Operand::Bool(..) => Type::Bool,
            Operand::Field(f, p) => match f {
                Field::Category | Field::LastCategory => Type::Str,
                Field::Genres => Type::List,
                Field::Price | Field::AgeDays => Type::Num,
                Field::InStock => Type::Bool,
                Field::Attribute(k) => self
                    .facts
                    .attribute_type(k)
                    .or_else(|e| fail(*p, format!("attributes.{k}: {e}")))?,
                Field::Context(_) => return Ok(None),
            },
        }))
    }

    fn operand(&mut self, o: &Operand, want: Option<Type>) -> Result<(Val, Type), RuleError> {
        let t = self.type_of(o)?.or(want).unwrap_or(Type::Str);
        let v = match o {
            Operand::Str(s, _) => Val::Text(self.facts.symbol(s), s.as_str().into()),
            Operand::Num(n, _) => Val::Num(*n),
            Operand::Bool(b, _) => Val::Bool(*b),
            Operand::Field(f, _) => match f {
                Field::Category => Val::Category,
                Field::Genres => Val::Genres,
                Field::Price => Val::Price,
                Field::InStock => Val::InStock,
                Field::AgeDays => Val::AgeDays,
                Field::Attribute(k) => {
                    let at = match self.attributes.iter().position(|a| a == k) {
                        Some(at) => at,
                        None => {
                            self.attributes.push(k.clone());
                            self.attributes.len() - 1
                        }
                    };
                    Val::Attribute(at)
                }
                Field::LastCategory => Val::Slot(self.slot(Slot::LastCategory), Type::Str),
                Field::Context(k) => Val::Slot(self.slot(Slot::Context(k.clone())), t),
            },
        };
        Ok((v, t))
    }

    fn slot(&mut self, s: Slot) -> usize {
        match self.slots.iter().position(|x| *x == s) {
            Some(at) => at,
            None => {
                self.slots.push(s);
                self.slots.len() - 1
            }
        }
    }
}

impl Rule {
    /// The environment to evaluate this rule in: the attribute columns it reads, resolved.
    pub(crate) fn env<'a>(
        &self,
        facts: &'a Facts,
        now_ms: i64,
        values: &'a [SlotValue<'a>],
    ) -> Env<'a> {
        let columns = self
            .attributes
            .iter()
            .map(|k| facts.attributes.get(k).map_or(&[][..], |c| &c.values[..]))
            .collect();
        Env {
            facts,
            now_ms,
            values,
            columns,
        }
    }

    /// Whether the item at fact index `item` passes.
    pub(crate) fn matches(&self, env: &Env<'_>, item: usize) -> bool {
        eval(&self.root, env, item)
    }
}

fn eval(node: &Node, env: &Env<'_>, i: usize) -> bool {
    match node {
        Node::And(a, b) => eval(a, env, i) && eval(b, env, i),
        Node::Or(a, b) => eval(a, env, i) || eval(b, env, i),
        Node::Not(a) => !eval(a, env, i),
        Node::Truth(v) => matches!(read(v, env, i), V::Bool(true)),
        Node::Cmp(op, a, b) => compare(*op, read(a, env, i), read(b, env, i)),
        Node::InSyms(v, set) => match read(v, env, i) {
            V::Sym(s) | V::Text(s, _) => s != NO_SYMBOL && set.contains(&s),
            V::List(l) => l.iter().any(|s| set.contains(s)),
            _ => false,
        },
        Node::InNums(v, set) => match read(v, env, i) {
            V::Num(n) => set.contains(&n),
            _ => false,
        },
        Node::InBools(v, set) => match read(v, env, i) {
            V::Bool(b) => set.contains(&b),
            _ => false,
        },
        Node::Contains(a, b) => match (read(a, env, i), read(b, env, i)) {
            (V::List(l), V::Sym(s) | V::Text(s, _)) => s != NO_SYMBOL && l.contains(&s),
            (V::Sym(h) | V::Text(h, _), V::Text(_, needle)) => {
                text_of(env, h, None).contains(needle)
            }
            (V::Sym(h) | V::Text(h, _), V::Sym(n)) => {
                text_of(env, h, None).contains(env.facts.name(n))
            }
            _ => false,
        },
    }
}

fn text_of<'a>(env: &'a Env<'_>, sym: u32, text: Option<&'a str>) -> &'a str {
    text.unwrap_or_else(|| env.facts.name(sym))
}

fn compare(op: Cmp, a: V<'_>, b: V<'_>) -> bool {
    let eq = match (a, b) {
        (V::Sym(x) | V::Text(x, _), V::Sym(y) | V::Text(y, _))
            if x != NO_SYMBOL || y != NO_SYMBOL =>
        {
            Some(x == y)
        }
        // Two strings no catalog item carries: compare their text.
        (V::Text(_, x), V::Text(_, y)) => Some(x == y),
        (V::Num(x), V::Num(y)) => {
            if x.is_nan() || y.is_nan() {
                None
            } else {
                return match op {
                    Cmp::Eq => x == y,
                    Cmp::Ne => x != y,
                    Cmp::Lt => x < y,
                    Cmp::Le => x <= y,
                    Cmp::Gt => x > y,
                    Cmp::Ge => x >= y,
                };
            }
        }
        (V::Bool(x), V::Bool(y)) => Some(x == y),
        _ => None,
    };
    match (op, eq) {
        (Cmp::Eq, Some(e)) => e,
        (Cmp::Ne, Some(e)) => !e,
        (Cmp::Ne, None) => true,
        _ => false,
    }
}

fn read<'a>(v: &'a Val, env: &'a Env<'_>, i: usize) -> V<'a> {
    let f = env.facts;
    match v {
        Val::Category => match f.category.get(i) {
            Some(&s) if s != NO_SYMBOL => V::Sym(s),
            _ => V::Missing,
        },
        Val::Genres => f.genres.get(i).map_or(V::Missing, |&(s, n)| {
            V::List(&f.lists[s as usize..(s + n) as usize])
        }),
        Val::Price => f.price.get(i).map_or(V::Missing, |&p| V::Num(p)),
        Val::InStock => f.in_stock.get(i).map_or(V::Missing, |&b| V::Bool(b)),
        Val::AgeDays => match f.created_ms.get(i) {
            Some(&c) if c != i64::MIN => V::Num((env.now_ms - c) as f64 / 86_400_000.0),
            _ => V::Missing,
        },
        Val::Attribute(a) => match env.columns.get(*a).and_then(|c| c.get(i)) {
            Some(Attr::Num(n)) => V::Num(*n),
            Some(Attr::Sym(s)) => V::Sym(*s),
            Some(Attr::Bool(b)) => V::Bool(*b),
            Some(Attr::List(s, n)) => V::List(&f.lists[*s as usize..(*s + *n) as usize]),
            Some(Attr::Missing) | None => V::Missing,
        },
        Val::Slot(s, t) => match env.values.get(*s) {
            Some(sv) => match (t, sv.text) {
                (_, None) => V::Missing,
                (Type::Num, _) => V::Num(sv.num),
                (Type::Bool, Some(text)) => match text {
                    "true" => V::Bool(true),
                    "false" => V::Bool(false),
                    _ => V::Missing,
                },
                (_, Some(text)) => V::Text(sv.sym, text),
            },
            None => V::Missing,
        },
        Val::Text(s, t) => V::Text(*s, t),
        Val::Num(n) => V::Num(*n),
        Val::Bool(b) => V::Bool(*b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marquee_domain::{Currency, Item, ItemId, Money};

    fn catalog() -> Vec<Item> {
        let now = chrono::Utc::now();
        let mut items = Vec::new();
        let mut add = |id: &str,
                       cat: &str,
                       genres: &[&str],
                       price: Option<i64>,
                       stock: bool,
                       days: i64,
                       attrs: serde_json::Value| {
            let mut it = Item::new(
                ItemId::new(id).unwrap(),
                format!("Item {id}"),
                cat,
                now - chrono::TimeDelta::days(days),
            );
            it.genres = genres.iter().map(|g| (*g).to_owned()).collect();
            it.price = price.map(|p| Money::new(p, Currency::new("EUR").unwrap()));
            it.in_stock = stock;
            it.attributes = attrs;
            items.push(it);
        };
        add(
            "a",
            "Drama",
            &["Drama", "War"],
            Some(999),
            true,
            1,
            serde_json::json!({"brand": "Acme", "rating": 4.5, "organic": true, "tags": ["new", "sale"]}),
        );
        add(
            "b",
            "Comedy",
            &["Comedy"],
            Some(1999),
            true,
            40,
            serde_json::json!({"brand": "Bolt", "rating": 3}),
        );
        add(
            "c",
            "Comedy",
            &["Comedy", "Romance"],
            None,
            false,
            400,
            serde_json::json!({"brand": "Acme", "mixed": 1}),
        );
        add(
            "d",
            "Horror",
            &[],
            Some(500),
            true,
            10,
            serde_json::json!({"mixed": "x"}),
        );
        items
    }

    fn facts() -> Facts {
        Facts::new(&catalog(), 0, |_| None)
    }

    /// The ids of the items `rule` passes, with `context` as the request's values.
    fn pass(rule: &str, context: &[(&str, &str)], last_category: Option<&str>) -> String {
        let f = facts();
        let r = compile(rule, &f).unwrap_or_else(|e| panic!("{rule}: {e}"));
        let values: Vec<SlotValue<'_>> = r
            .slots
            .iter()
            .map(|s| match s {
                Slot::LastCategory => SlotValue::new(&f, last_category),
                Slot::Context(k) => SlotValue::new(
                    &f,
                    context.iter().find(|(key, _)| key == k).map(|(_, v)| *v),
                ),
            })
            .collect();
        let env = r.env(&f, chrono::Utc::now().timestamp_millis(), &values);
        (0..f.len())
            .filter(|&i| r.matches(&env, i))
            .map(|i| f.extra_ids[i].as_str())
            .collect()
    }

    #[test]
    fn every_form_selects_the_right_items() {
        assert_eq!(pass(r#"category == "Comedy""#, &[], None), "bc");
        assert_eq!(pass(r#"category != 'Comedy'"#, &[], None), "ad");
        assert_eq!(pass("price < 10", &[], None), "ad");
        assert_eq!(pass("price <= 19.99", &[], None), "abd");
        assert_eq!(pass("price > 9.99", &[], None), "b");
        assert_eq!(pass("price >= 9.99", &[], None), "ab");
        // An item without a price fails every comparison but `!=`.
        assert_eq!(pass("price != 5", &[], None), "abc");
        assert_eq!(pass("in_stock", &[], None), "abd");
        assert_eq!(pass("!in_stock", &[], None), "c");
        assert_eq!(pass("in_stock == false", &[], None), "c");
        assert_eq!(pass("age_days < 30", &[], None), "ad");
        assert_eq!(pass(r#"genres contains "Comedy""#, &[], None), "bc");
        assert_eq!(pass(r#"genres in ["War", "Romance"]"#, &[], None), "ac");
        assert_eq!(
            pass(r#"category in ["Drama", "Horror", "Nope"]"#, &[], None),
            "ad"
        );
        assert_eq!(pass("price in [5, 19.99]", &[], None), "bd");
        assert_eq!(pass(r#"category contains "med""#, &[], None), "bc");
        assert_eq!(pass(r#"attributes.brand == "Acme""#, &[], None), "ac");
        assert_eq!(pass("attributes.rating >= 4", &[], None), "a");
        assert_eq!(pass("attributes.organic", &[], None), "a");
        assert_eq!(pass(r#"attributes.tags contains "sale""#, &[], None), "a");
        assert_eq!(
            pass(
                r#"(category == "Comedy" || category == "Horror") && in_stock"#,
                &[],
                None
            ),
            "bd"
        );
        assert_eq!(
            pass(r#"!(category == "Comedy") && price < 15"#, &[], None),
            "ad"
        );
        assert_eq!(pass("true", &[], None), "abcd");
        assert_eq!(pass(r#"category == "Unknown""#, &[], None), "");
        assert_eq!(pass(r#""x" == "x""#, &[], None), "abcd");
        assert_eq!(
            pass("category == user.last_category", &[], Some("Comedy")),
            "bc"
        );
        assert_eq!(pass("category == user.last_category", &[], None), "");
        assert_eq!(
            pass("category == context.shelf", &[("shelf", "Drama")], None),
            "a"
        );
        assert_eq!(
            pass("price <= context.budget", &[("budget", "10")], None),
            "ad"
        );
        assert_eq!(
            pass("price <= context.budget", &[("budget", "lots")], None),
            ""
        );
        assert_eq!(
            pass("in_stock == context.stock", &[("stock", "false")], None),
            "c"
        );
    }

    fn error(rule: &str) -> RuleError {
        compile(rule, &facts()).expect_err(rule)
    }

    #[test]
    fn errors_name_the_position_and_what_was_expected() {
        let e = error(r#"category == "Comedy" &&"#);
        assert_eq!(e.position, 24, "{e}");
        assert!(e.message.contains("expected a field"), "{e}");
        let e = error("price < \"cheap\"");
        assert_eq!(e.position, 9, "{e}");
        assert!(e.message.contains("expected a number"), "{e}");
        let e = error("colour == 'red'");
        assert_eq!(e.position, 1);
        assert!(e.message.contains("unknown field `colour`"), "{e}");
        let e = error("category = 'x'");
        assert_eq!(e.position, 10);
        assert!(e.message.contains("`==`"), "{e}");
        let e = error("(price < 3");
        assert_eq!(e.position, 11, "{e}");
        assert!(e.message.contains("expected `)`"), "{e}");
        let e = error("category == 'Comedy");
        assert_eq!(e.position, 13);
        assert!(e.message.contains("not closed"), "{e}");
        let e = error("price");
        assert!(e.message.contains("expected a condition"), "{e}");
        let e = error("genres == 'Drama'");
        assert!(e.message.contains("use `contains`"), "{e}");
        let e = error("category > 'A'");
        assert!(e.message.contains("compare numbers"), "{e}");
        let e = error("attributes.mixed == 1");
        assert_eq!(e.position, 1);
        assert!(e.message.contains("mixed types"), "{e}");
        let e = error("attributes.size == 1");
        assert!(e.message.contains("type is unknown"), "{e}");
        let e = error("category in ['a', 2]");
        assert_eq!(e.position, 19, "{e}");
        let e = error("price contains 'x'");
        assert!(e.message.contains("`contains` needs"), "{e}");
        let e = error("in_stock and price < 3");
        assert!(e.message.contains("&&"), "{e}");
        let e = error("in_stock price");
        assert_eq!(e.position, 10, "{e}");
        assert_eq!(error("  ").position, 1);
        // No rule exhausts the stack: nesting and length are bounded.
        let deep = format!("{}in_stock{}", "(".repeat(100), ")".repeat(100));
        assert!(error(&deep).message.contains("nest at most 64"));
        let nots = format!("{}in_stock", "!".repeat(100));
        assert!(error(&nots).message.contains("nest at most 64"));
        let long = vec!["in_stock"; 1_000].join(" && ");
        assert_eq!(error(&long).position, MAX_RULE_CHARS + 1);
        let fine = vec!["in_stock"; 300].join(" && ");
        assert!(compile(&fine, &facts()).is_ok());
        let e = error("category == €");
        assert_eq!(e.position, 13, "{e}");
    }
}
