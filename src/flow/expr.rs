//! The small expression language of `when:` conditions and `set:` values.
//!
//! ```text
//! phq2 >= 3 and gad2 < 3
//! role == 'physician' or role == 'student'
//! who5 * 4
//! ```
//! Variables never set read as 0. Text values ('physician') come only from
//! flow files, never from what a worker types.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A session variable's value: a number or a tag written in a flow file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VarValue {
    Int(i64),
    Tag(String),
}

impl fmt::Display for VarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarValue::Int(i) => write!(f, "{i}"),
            VarValue::Tag(t) => f.write_str(t),
        }
    }
}

pub type Vars = BTreeMap<String, VarValue>;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Int(i64),
    Tag(String),
    Var(String),
    Add(Box<Expr>, Box<Expr>),
    Sub(Box<Expr>, Box<Expr>),
    Mul(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Cmp(Expr, CmpOp, Expr),
    /// A bare value: true when it is a non-zero number or any tag.
    Truthy(Expr),
    Not(Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

impl Expr {
    pub fn eval(&self, vars: &Vars) -> VarValue {
        let num = |e: &Expr| match e.eval(vars) {
            VarValue::Int(i) => i,
            VarValue::Tag(_) => 0,
        };
        match self {
            Expr::Int(i) => VarValue::Int(*i),
            Expr::Tag(t) => VarValue::Tag(t.clone()),
            Expr::Var(v) => vars.get(v).cloned().unwrap_or(VarValue::Int(0)),
            Expr::Add(a, b) => VarValue::Int(num(a).saturating_add(num(b))),
            Expr::Sub(a, b) => VarValue::Int(num(a).saturating_sub(num(b))),
            Expr::Mul(a, b) => VarValue::Int(num(a).saturating_mul(num(b))),
        }
    }

    pub fn variables<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Var(v) => out.push(v),
            Expr::Add(a, b) | Expr::Sub(a, b) | Expr::Mul(a, b) => {
                a.variables(out);
                b.variables(out);
            }
            Expr::Int(_) | Expr::Tag(_) => {}
        }
    }
}

impl Cond {
    pub fn eval(&self, vars: &Vars) -> bool {
        match self {
            Cond::Truthy(e) => !matches!(e.eval(vars), VarValue::Int(0)),
            Cond::Not(c) => !c.eval(vars),
            Cond::And(a, b) => a.eval(vars) && b.eval(vars),
            Cond::Or(a, b) => a.eval(vars) || b.eval(vars),
            Cond::Cmp(a, op, b) => {
                let (a, b) = (a.eval(vars), b.eval(vars));
                match (&a, &b) {
                    (VarValue::Int(x), VarValue::Int(y)) => match op {
                        CmpOp::Eq => x == y,
                        CmpOp::Ne => x != y,
                        CmpOp::Lt => x < y,
                        CmpOp::Le => x <= y,
                        CmpOp::Gt => x > y,
                        CmpOp::Ge => x >= y,
                    },
                    // Tags compare for (in)equality only; an unset variable (0) equals no tag.
                    _ => match op {
                        CmpOp::Eq => a == b,
                        CmpOp::Ne => a != b,
                        _ => false,
                    },
                }
            }
        }
    }

    pub fn variables<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Cond::Cmp(a, _, b) => {
                a.variables(out);
                b.variables(out);
            }
            Cond::Truthy(e) => e.variables(out),
            Cond::Not(c) => c.variables(out),
            Cond::And(a, b) | Cond::Or(a, b) => {
                a.variables(out);
                b.variables(out);
            }
        }
    }
}

/// A parse error: the 1-based column within the expression text, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub col: u32,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    Ident(String),
    Tag(String),
    Op(&'static str),
    LParen,
    RParen,
}

fn lex(src: &str) -> Result<Vec<(Tok, u32)>, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i as u32 + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let n = text.parse().map_err(|_| ExprError { col, message: format!("number `{text}` is too large") })?;
            out.push((Tok::Int(n), col));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                i += 1;
            }
            out.push((Tok::Ident(chars[start..i].iter().collect()), col));
        } else if c == '\'' || c == '"' {
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += 1;
            }
            if i >= chars.len() {
                return Err(ExprError { col, message: "text value is missing its closing quote".into() });
            }
            out.push((Tok::Tag(chars[start..i].iter().collect()), col));
            i += 1;
        } else {
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = match two.as_str() {
                ">=" => Some(">="),
                "<=" => Some("<="),
                "==" => Some("=="),
                "!=" => Some("!="),
                _ => None,
            };
            if let Some(op) = op {
                out.push((Tok::Op(op), col));
                i += 2;
                continue;
            }
            let tok = match c {
                '>' => Tok::Op(">"),
                '<' => Tok::Op("<"),
                '=' => Tok::Op("=="),
                '+' => Tok::Op("+"),
                '-' => Tok::Op("-"),
                '*' => Tok::Op("*"),
                '(' => Tok::LParen,
                ')' => Tok::RParen,
                _ => return Err(ExprError { col, message: format!("unexpected character `{c}`") }),
            };
            out.push((tok, col));
            i += 1;
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, u32)>,
    at: usize,
    end_col: u32,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(t, _)| t)
    }
    fn col(&self) -> u32 {
        self.toks.get(self.at).map(|(_, c)| *c).unwrap_or(self.end_col)
    }
    fn err<T>(&self, message: impl Into<String>) -> Result<T, ExprError> {
        Err(ExprError { col: self.col(), message: message.into() })
    }
    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(w)) if w == word) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    fn op(&mut self, ops: &[&'static str]) -> Option<&'static str> {
        if let Some(Tok::Op(o)) = self.peek()
            && let Some(found) = ops.iter().find(|x| *x == o)
        {
            self.at += 1;
            return Some(found);
        }
        None
    }

    fn cond(&mut self) -> Result<Cond, ExprError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Cond, ExprError> {
        let mut left = self.not()?;
        while self.keyword("and") {
            left = Cond::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }
    fn not(&mut self) -> Result<Cond, ExprError> {
        if self.keyword("not") {
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        let left = self.sum()?;
        let op = match self.op(&["==", "!=", "<", "<=", ">", ">="]) {
            Some("==") => CmpOp::Eq,
            Some("!=") => CmpOp::Ne,
            Some("<") => CmpOp::Lt,
            Some("<=") => CmpOp::Le,
            Some(">") => CmpOp::Gt,
            Some(">=") => CmpOp::Ge,
            _ => return Ok(Cond::Truthy(left)),
        };
        Ok(Cond::Cmp(left, op, self.sum()?))
    }
    fn sum(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.term()?;
        while let Some(op) = self.op(&["+", "-"]) {
            let right = self.term()?;
            left = if op == "+" {
                Expr::Add(Box::new(left), Box::new(right))
            } else {
                Expr::Sub(Box::new(left), Box::new(right))
            };
        }
        Ok(left)
    }
    fn term(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.atom()?;
        while self.op(&["*"]).is_some() {
            left = Expr::Mul(Box::new(left), Box::new(self.atom()?));
        }
        Ok(left)
    }
    fn atom(&mut self) -> Result<Expr, ExprError> {
        match self.peek().cloned() {
            Some(Tok::Int(n)) => {
                self.at += 1;
                Ok(Expr::Int(n))
            }
            Some(Tok::Tag(t)) => {
                self.at += 1;
                Ok(Expr::Tag(t))
            }
            Some(Tok::Ident(w)) if !matches!(w.as_str(), "and" | "or" | "not") => {
                self.at += 1;
                Ok(Expr::Var(w))
            }
            Some(Tok::LParen) => {
                self.at += 1;
                let e = self.sum()?;
                if self.peek() != Some(&Tok::RParen) {
                    return self.err("expected `)`");
                }
                self.at += 1;
                Ok(e)
            }
            Some(_) => self.err("expected a number, a variable or a 'quoted value'"),
            None => self.err("the expression ends too early"),
        }
    }
    fn finish(&self) -> Result<(), ExprError> {
        if self.at < self.toks.len() { self.err("unexpected text after the expression") } else { Ok(()) }
    }
}

pub fn parse_cond(src: &str) -> Result<Cond, ExprError> {
    let mut p = Parser { toks: lex(src)?, at: 0, end_col: src.chars().count() as u32 + 1 };
    let c = p.cond()?;
    p.finish()?;
    Ok(c)
}

pub fn parse_expr(src: &str) -> Result<Expr, ExprError> {
    let mut p = Parser { toks: lex(src)?, at: 0, end_col: src.chars().count() as u32 + 1 };
    let e = p.sum()?;
    p.finish()?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, VarValue)]) -> Vars {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn comparisons_at_the_edges() {
        let c = parse_cond("phq2 >= 3").expect("parses");
        assert!(!c.eval(&vars(&[("phq2", VarValue::Int(2))])));
        assert!(c.eval(&vars(&[("phq2", VarValue::Int(3))])));
        assert!(!c.eval(&Vars::new()), "unset reads as 0");
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let c = parse_cond("a == 1 or b == 1 and c == 1").expect("parses");
        assert!(c.eval(&vars(&[("a", VarValue::Int(1))])));
        assert!(!c.eval(&vars(&[("b", VarValue::Int(1))])));
        assert!(c.eval(&vars(&[("b", VarValue::Int(1)), ("c", VarValue::Int(1))])));
    }

    #[test]
    fn tags_and_arithmetic() {
        let c = parse_cond("role == 'physician' and not x").expect("parses");
        assert!(c.eval(&vars(&[("role", VarValue::Tag("physician".into()))])));
        assert!(!c.eval(&vars(&[("role", VarValue::Tag("nurse".into()))])));
        let e = parse_expr("(who5 + 1) * 4 - 4").expect("parses");
        assert_eq!(e.eval(&vars(&[("who5", VarValue::Int(13))])), VarValue::Int(52));
    }

    #[test]
    fn errors_point_at_the_column() {
        assert_eq!(parse_cond("phq2 >= ").unwrap_err().col, 9);
        assert_eq!(parse_cond("phq2 >= 3 3").unwrap_err().col, 11);
        assert_eq!(parse_cond("a ? 1").unwrap_err().col, 3);
        assert!(parse_cond("role == 'x").is_err());
    }
}
