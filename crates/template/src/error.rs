//! Why a template could not be compiled or rendered, in words fit to show the author as a
//! delivery's last error.

use handlebars::{RenderErrorReason, TemplateError, TemplateErrorReason};

/// A failure to compile or render a template. The message is one line.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template source is not valid Handlebars.
    #[error("template syntax error at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// The template source is not valid Handlebars, and the parser gave no position.
    #[error("template syntax error: {message}")]
    SyntaxUnlocated { message: String },
    /// The template is valid but failed while rendering, e.g. it calls an unknown helper.
    #[error("template rendering failed: {message}")]
    Render { message: String },
}

impl RenderError {
    /// Describes a parse failure of `source`.
    pub(crate) fn syntax(error: &TemplateError, source: &str) -> Self {
        let message = match error.reason() {
            TemplateErrorReason::InvalidSyntax(expected) => {
                describe_invalid_syntax(expected, source, error.pos())
            }
            TemplateErrorReason::MismatchingClosedHelper(opened, closed)
            | TemplateErrorReason::MismatchingClosedDecorator(opened, closed) => {
                format!("block {{{{#{opened}}}}} is closed by {{{{/{closed}}}}}")
            }
            other => one_line(&other.to_string()),
        };

        match error.pos() {
            Some((line, column)) => Self::Syntax {
                line,
                column,
                message,
            },
            None => Self::SyntaxUnlocated { message },
        }
    }

    /// Describes a failure while rendering.
    pub(crate) fn render(error: &handlebars::RenderError) -> Self {
        if let RenderErrorReason::TemplateError(template_error) = error.reason() {
            return Self::syntax(template_error, "");
        }

        let mut message = describe_render_failure(error.reason());
        if let (Some(line), Some(column)) = (error.line_no, error.column_no) {
            message.push_str(&format!(" (line {line}, column {column})"));
        }
        Self::Render { message }
    }
}

/// Turns the parser's list of grammar rules into a sentence about what was found and what
/// could have come instead.
fn describe_invalid_syntax(
    parser_message: &str,
    source: &str,
    position: Option<(usize, usize)>,
) -> String {
    let expected: Vec<&str> = parser_message
        .strip_prefix("expected ")
        .unwrap_or_default()
        .split(", ")
        .flat_map(|rules| rules.split(" or "))
        .map(|rule| rule.trim_start_matches("or ").trim())
        .filter(|rule| !rule.is_empty())
        .collect();
    let found = position.and_then(|(line, column)| char_at(source, line, column));

    if found.is_none() && expected.contains(&"helper_block_end") {
        return "a block opened with {{#…}} is never closed".to_owned();
    }
    if found == Some('/') {
        return "a closing {{/…}} tag has no block to close".to_owned();
    }

    let found = match found {
        None => "end of template".to_owned(),
        Some('\n' | '\r') => "line break".to_owned(),
        Some(c) if c.is_whitespace() => "space".to_owned(),
        Some(c) => format!("\"{c}\""),
    };
    let mut wanted: Vec<String> = Vec::new();
    for phrase in expected.iter().filter_map(|rule| rule_phrase(rule)) {
        if !wanted.contains(&phrase) {
            wanted.push(phrase);
        }
    }

    match wanted.as_slice() {
        [] => format!("unexpected {found}"),
        [only] => format!("unexpected {found}, expected {only}"),
        [init @ .., last] => format!("unexpected {found}, expected {} or {last}", init.join(", ")),
    }
}

/// What a grammar rule stands for, in the words of a template author; `None` for rules
/// that add nothing a reader would act on.
fn rule_phrase(rule: &str) -> Option<String> {
    let phrase = match rule {
        "leading_tilde_to_omit_whitespace" | "escape" | "raw_text" | "EOI" => return None,
        "identifier"
        | "opt_identifier"
        | "partial_identifier"
        | "opt_partial_identifier"
        | "path_inline"
        | "path_id"
        | "reference" => "a name",
        "helper_parameter" | "literal" | "string_literal" | "number_literal" | "subexpression" => {
            "a value"
        }
        "hash" => "an option such as key=value",
        "block_param" => "block parameters such as as |item|",
        "trailing_tilde_to_omit_whitespace" => "closing braces",
        "helper_block_end" => "a closing {{/…}} tag",
        "invert_tag" | "invert_chain_tag" => "{{else}}",
        "expression"
        | "html_expression"
        | "decorator_expression"
        | "partial_expression"
        | "helper_block_start"
        | "decorator_block_start"
        | "partial_block_start"
        | "raw_block_start"
        | "hbs_comment"
        | "hbs_comment_compact" => "a template tag",
        other => return Some(other.replace('_', " ")),
    };
    Some(phrase.to_owned())
}

/// The character at a 1-based line and column (a line's end counts as `\n`), or `None`
/// past the end of the source.
fn char_at(source: &str, line: usize, column: usize) -> Option<char> {
    let mut lines = source.split('\n');
    let text = lines.nth(line.checked_sub(1)?)?;
    let is_last_line = lines.next().is_none();
    let index = column.checked_sub(1)?;

    text.chars()
        .nth(index)
        .or_else(|| (!is_last_line && index == text.chars().count()).then_some('\n'))
}

fn describe_render_failure(reason: &RenderErrorReason) -> String {
    let message = match reason {
        RenderErrorReason::HelperNotFound(name) => format!("unknown helper \"{name}\""),
        RenderErrorReason::PartialNotFound(name) => format!("unknown partial \"{name}\""),
        RenderErrorReason::TemplateNotFound(name) => format!("unknown template \"{name}\""),
        RenderErrorReason::DecoratorNotFound(name) => format!("unknown decorator \"{name}\""),
        RenderErrorReason::ParamNotFoundForIndex(helper, index) => {
            format!("helper \"{helper}\" is missing argument {}", index + 1)
        }
        RenderErrorReason::ParamNotFoundForName(helper, name) => {
            format!("helper \"{helper}\" is missing its \"{name}\" option")
        }
        RenderErrorReason::InvalidParamType(expected) => {
            format!("a helper argument has the wrong type, expected {expected}")
        }
        RenderErrorReason::BlockContentRequired => {
            "this helper is a block and needs {{#…}}…{{/…}}".to_owned()
        }
        RenderErrorReason::Other(message) => message.clone(),
        other => other.to_string(),
    };
    one_line(&message)
}

/// Joins the lines of a message with spaces, so it fits a single log field or table cell.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax_message(source: &str) -> String {
        let error = handlebars::Template::compile(source).expect_err("invalid template");
        RenderError::syntax(&error, source).to_string()
    }

    #[test]
    fn an_unterminated_expression_names_what_was_expected() {
        assert_eq!(
            syntax_message("Hello {{name"),
            "template syntax error at line 1, column 13: unexpected end of template, \
             expected a name, a value or closing braces"
        );
    }

    #[test]
    fn an_unclosed_block_says_so() {
        assert_eq!(
            syntax_message("Hi\n{{#if vip}}welcome"),
            "template syntax error at line 2, column 19: \
             a block opened with {{#…}} is never closed"
        );
    }

    #[test]
    fn a_mismatched_closing_tag_names_both_blocks() {
        assert_eq!(
            syntax_message("{{#if x}}a{{/each}}"),
            "template syntax error at line 1, column 11: block {{#if}} is closed by {{/each}}"
        );
    }

    #[test]
    fn the_unexpected_character_is_quoted() {
        assert_eq!(
            syntax_message("{{foo bar=}}"),
            "template syntax error at line 1, column 11: unexpected \"}\", expected a value"
        );
    }

    #[test]
    fn a_closing_tag_without_a_block_says_so() {
        assert_eq!(
            syntax_message("Hi {{/if}}"),
            "template syntax error at line 1, column 6: a closing {{/…}} tag has no block to close"
        );
    }

    #[test]
    fn two_alternatives_are_both_named() {
        assert_eq!(
            syntax_message("{{foo (bar}}"),
            "template syntax error at line 1, column 11: unexpected \"}\", \
             expected a name or a value"
        );
    }

    #[test]
    fn every_message_is_a_single_line() {
        for source in ["{{", "{{#each}}", "a\n{{> }}\nb", "{{{x}}", "{{/if}}"] {
            let message = syntax_message(source);
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn characters_are_found_by_line_and_column() {
        assert_eq!(char_at("ab\ncd", 2, 2), Some('d'));
        assert_eq!(char_at("ab\ncd", 1, 3), Some('\n'));
        assert_eq!(char_at("ab\ncd", 2, 3), None);
        assert_eq!(char_at("ab", 0, 1), None);
    }
}
