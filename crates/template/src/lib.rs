//! Handlebars rendering of notification titles and contents for the render stage: plain
//! text, sanitized HTML, and the subject and bodies of an email.
//!
//! A template is compiled once with [`Renderer::compile`] and rendered for every recipient
//! of a chunk. Missing variables render as nothing. Besides the Handlebars built-ins
//! (`if`, `each`, `with`, `eq`, `ne`, `gt`, `lt`, `and`, `or`, `not`, `len`, …) templates
//! can call `upper`, `lower`, `default`, `truncate`, `number_format` and `format_datetime`;
//! the last two follow `recipient.locale` and `recipient.timezone` of the context unless
//! given `locale=` or `tz=`.

mod error;
mod format;
mod helpers;
mod html;
mod locale;

use std::fmt;
use std::sync::Arc;

use handlebars::{Context, Handlebars, RenderContext, Renderable, StringOutput, Template};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use error::RenderError;

/// Renders compiled templates. Holds no per-render state, so one renderer can be shared by
/// all tasks of a process behind an [`Arc`].
pub struct Renderer {
    /// Writes values as they are.
    text: Handlebars<'static>,
    /// Writes values HTML-escaped, except in `{{{triple-stash}}}`.
    html: Handlebars<'static>,
    markup: html::Markup,
}

/// A parsed template, ready to render any number of times. Cloning it is cheap.
#[derive(Clone, Debug)]
pub struct Compiled {
    template: Arc<Template>,
}

/// The three parts of an email rendered for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailContent {
    pub subject: String,
    pub html: String,
    pub text: String,
}

impl Renderer {
    pub fn new() -> Self {
        Self {
            text: registry(handlebars::no_escape),
            html: registry(handlebars::html_escape),
            markup: html::Markup::new(),
        }
    }

    /// Parses a template once, so a chunk of many recipients does not re-parse it.
    pub fn compile(&self, source: &str) -> Result<Compiled, RenderError> {
        let template =
            Template::compile(source).map_err(|error| RenderError::syntax(&error, source))?;
        Ok(Compiled {
            template: Arc::new(template),
        })
    }

    /// Plain text: no HTML escaping (SMS, push, subjects, webhook JSON strings).
    pub fn render_text(&self, template: &Compiled, context: &Value) -> Result<String, RenderError> {
        render(&self.text, template, &Context::from(context.clone()))
    }

    /// HTML: values are HTML-escaped unless written as `{{{value}}}`, and the result is
    /// sanitized: scripts, event handlers and `javascript:` links are removed, formatting,
    /// links, images and tables are kept.
    pub fn render_html(&self, template: &Compiled, context: &Value) -> Result<String, RenderError> {
        let rendered = render(&self.html, template, &Context::from(context.clone()))?;
        Ok(self.markup.sanitize(&rendered))
    }

    /// An email: the subject from the title rendered as text on one line; the HTML body
    /// from the content, laid out in paragraphs if the content has no block-level HTML of
    /// its own, then sanitized; the text body from the content rendered as text, with its
    /// HTML turned into plain text.
    pub fn email(
        &self,
        title: &Compiled,
        content: &Compiled,
        context: &Value,
    ) -> Result<EmailContent, RenderError> {
        let context = Context::from(context.clone());

        let subject = single_line(&render(&self.text, title, &context)?);

        let body = render(&self.html, content, &context)?;
        let body = if html::has_block_tags(&body) {
            body
        } else {
            html::paragraphs(&body)
        };
        let html = self.markup.sanitize(&body);

        let text = self.markup.to_text(&render(&self.text, content, &context)?);

        Ok(EmailContent {
            subject,
            html,
            text,
        })
    }
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer").finish_non_exhaustive()
    }
}

fn registry(escape: fn(&str) -> String) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(false);
    registry.register_escape_fn(escape);
    helpers::register(&mut registry);
    registry
}

fn render(
    registry: &Handlebars<'static>,
    template: &Compiled,
    context: &Context,
) -> Result<String, RenderError> {
    let mut render_context = RenderContext::new(None);
    let mut output = StringOutput::new();
    template
        .template
        .render(registry, context, &mut render_context, &mut output)
        .map_err(|error| RenderError::render(&error))?;
    output
        .into_string()
        .map_err(|error| RenderError::render(&error.into()))
}

/// Joins the lines of a subject with single spaces and trims it: a mail header holds one
/// line.
fn single_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const WELCOME_TITLE: &str = "Willkommen bei TechCorp, {{recipient.first_name}}!";
    const WELCOME_CONTENT: &str = "Hallo {{recipient.first_name}}, {{#if (eq recipient.tier \"premium\")}}als Premium-Kunde erhalten Sie 20 % Rabatt.{{/if}}";

    fn recipient(first_name: &str, tier: &str) -> Value {
        json!({
            "recipient": {
                "first_name": first_name,
                "tier": tier,
                "locale": "de",
                "timezone": "Europe/Berlin",
                "email": "maria@example.com",
                "user_id": "u-1",
            },
            "notification": {"campaign": "welcome"},
        })
    }

    fn text(source: &str, context: &Value) -> String {
        let renderer = Renderer::new();
        let template = renderer.compile(source).expect("template compiles");
        renderer
            .render_text(&template, context)
            .expect("template renders")
    }

    fn html(source: &str, context: &Value) -> String {
        let renderer = Renderer::new();
        let template = renderer.compile(source).expect("template compiles");
        renderer
            .render_html(&template, context)
            .expect("template renders")
    }

    #[test]
    fn the_premium_paragraph_renders_only_for_premium_recipients() {
        let renderer = Renderer::new();
        let title = renderer.compile(WELCOME_TITLE).expect("title compiles");
        let content = renderer.compile(WELCOME_CONTENT).expect("content compiles");

        let premium = recipient("Maria", "premium");
        let basic = recipient("Jonas", "basic");

        assert_eq!(
            renderer.render_text(&title, &premium).unwrap(),
            "Willkommen bei TechCorp, Maria!"
        );
        assert_eq!(
            renderer.render_text(&content, &premium).unwrap(),
            "Hallo Maria, als Premium-Kunde erhalten Sie 20 % Rabatt."
        );
        assert_eq!(
            renderer.render_text(&content, &basic).unwrap(),
            "Hallo Jonas, "
        );
    }

    #[test]
    fn one_compiled_template_renders_for_many_recipients() {
        let renderer = Renderer::new();
        let content = renderer.compile(WELCOME_CONTENT).expect("content compiles");

        let rendered: Vec<String> = ["Ana", "Ben", "Cem"]
            .iter()
            .map(|name| {
                renderer
                    .render_text(&content, &recipient(name, "basic"))
                    .unwrap()
            })
            .collect();

        assert_eq!(rendered, ["Hallo Ana, ", "Hallo Ben, ", "Hallo Cem, "]);
    }

    #[test]
    fn a_shared_renderer_renders_correctly_from_many_threads() {
        let renderer = Arc::new(Renderer::new());
        let content = renderer.compile(WELCOME_CONTENT).expect("content compiles");

        std::thread::scope(|scope| {
            for worker in 0..8 {
                let renderer = Arc::clone(&renderer);
                let content = content.clone();
                scope.spawn(move || {
                    for round in 0..50 {
                        let name = format!("R{worker}-{round}");
                        let tier = if round % 2 == 0 { "premium" } else { "basic" };
                        let rendered = renderer
                            .render_text(&content, &recipient(&name, tier))
                            .unwrap();
                        assert!(rendered.starts_with(&format!("Hallo {name}, ")));
                        assert_eq!(rendered.contains("Rabatt"), tier == "premium");
                    }
                });
            }
        });
    }

    #[test]
    fn renderer_and_compiled_templates_can_cross_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Renderer>();
        assert_send_sync::<Compiled>();
        assert_send_sync::<EmailContent>();
    }

    #[test]
    fn missing_variables_render_as_nothing() {
        assert_eq!(
            text("Hi {{recipient.nickname}}{{nothing.at.all}}!", &json!({})),
            "Hi !"
        );
    }

    #[test]
    fn text_output_is_not_escaped() {
        let context = json!({"show": "Tom & Jerry", "tag": "<b>"});
        assert_eq!(text("{{show}} {{tag}}", &context), "Tom & Jerry <b>");
    }

    #[test]
    fn html_output_escapes_values() {
        let context = json!({"name": "<script>alert(1)</script>"});
        assert_eq!(
            html("<p>Hi {{name}}</p>", &context),
            "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>"
        );
    }

    #[test]
    fn html_output_escapes_helper_results_too() {
        let context = json!({"name": "<b>x</b>"});
        assert_eq!(html("{{upper name}}", &context), "&lt;B&gt;X&lt;/B&gt;");
    }

    #[test]
    fn html_output_strips_scripts_and_event_handlers_from_author_markup() {
        let source = r#"<p onclick="steal()">Hi</p><script>steal()</script><a href="javascript:steal()">x</a>"#;
        assert_eq!(
            html(source, &json!({})),
            r#"<p>Hi</p><a rel="noopener noreferrer">x</a>"#
        );
    }

    #[test]
    fn triple_stash_values_are_unescaped_but_still_sanitized() {
        let context = json!({"snippet": "<b>ok</b><img src=\"logo.png\" onerror=\"steal()\"><script>x()</script>"});
        assert_eq!(
            html("{{{snippet}}}", &context),
            r#"<b>ok</b><img src="logo.png">"#
        );
    }

    #[test]
    fn helpers_default_to_the_recipient_locale_and_timezone() {
        let context = json!({
            "recipient": {"locale": "de", "timezone": "Europe/Berlin"},
            "order": {"total": 1234.5, "placed_at": "2026-12-03T13:05:00Z"},
        });
        assert_eq!(
            text(
                r#"{{number_format order.total decimals=2}} € am {{format_datetime order.placed_at format="long"}}"#,
                &context
            ),
            "1.234,50 € am 3. Dezember 2026, 14:05"
        );
    }

    #[test]
    fn a_syntax_error_names_its_line_and_column() {
        let error = Renderer::new()
            .compile("Hallo\n{{recipient.first_name")
            .expect_err("the expression is not closed");
        assert!(matches!(
            error,
            RenderError::Syntax {
                line: 2,
                column: 23,
                ..
            }
        ));
        assert_eq!(
            error.to_string(),
            "template syntax error at line 2, column 23: unexpected end of template, \
             expected closing braces"
        );
    }

    #[test]
    fn an_unknown_helper_fails_rendering_with_a_readable_message() {
        let renderer = Renderer::new();
        let template = renderer
            .compile("Hi {{shout name}}")
            .expect("template compiles");
        let error = renderer
            .render_text(&template, &json!({"name": "Ana"}))
            .expect_err("shout is not a helper");
        assert_eq!(
            error.to_string(),
            "template rendering failed: unknown helper \"shout\" (line 1, column 4)"
        );
    }

    #[test]
    fn email_subjects_are_one_trimmed_line() {
        let renderer = Renderer::new();
        let title = renderer
            .compile("  Your order\r\n  {{id}} shipped \n")
            .unwrap();
        let content = renderer.compile("").unwrap();
        let email = renderer
            .email(&title, &content, &json!({"id": 42}))
            .unwrap();
        assert_eq!(email.subject, "Your order 42 shipped");
    }

    #[test]
    fn email_lays_out_plain_content_in_paragraphs() {
        let renderer = Renderer::new();
        let title = renderer.compile(WELCOME_TITLE).unwrap();
        let content = renderer
            .compile("Hallo {{recipient.first_name}},\n\nIhr Code: {{code}}\nGültig bis morgen.")
            .unwrap();
        let mut context = recipient("Maria", "premium");
        context["code"] = json!("A&B<1>");

        let email = renderer.email(&title, &content, &context).unwrap();

        assert_eq!(email.subject, "Willkommen bei TechCorp, Maria!");
        assert_eq!(
            email.html,
            "<p>Hallo Maria,</p>\n<p>Ihr Code: A&amp;B&lt;1&gt;<br>\nGültig bis morgen.</p>"
        );
        assert_eq!(
            email.text,
            "Hallo Maria,\n\nIhr Code: A&B<1>\nGültig bis morgen."
        );
    }

    #[test]
    fn email_keeps_the_layout_of_html_content() {
        let renderer = Renderer::new();
        let title = renderer.compile("Hi").unwrap();
        let content = renderer
            .compile(concat!(
                "<h1>Hallo {{name}}</h1>\n",
                "<p>Sie haben <strong>3</strong> neue Nachrichten.</p>\n",
                "<p><a href=\"https://app.example/inbox\" onclick=\"x()\">Posteingang</a></p>",
                "<script>track()</script>",
            ))
            .unwrap();

        let email = renderer
            .email(&title, &content, &json!({"name": "Tom & Jerry"}))
            .unwrap();

        assert_eq!(
            email.html,
            concat!(
                "<h1>Hallo Tom &amp; Jerry</h1>\n",
                "<p>Sie haben <strong>3</strong> neue Nachrichten.</p>\n",
                "<p><a href=\"https://app.example/inbox\" rel=\"noopener noreferrer\">Posteingang</a></p>",
            )
        );
        assert_eq!(
            email.text,
            "Hallo Tom & Jerry\n\nSie haben 3 neue Nachrichten.\n\nPosteingang (https://app.example/inbox)"
        );
    }

    #[test]
    fn email_content_round_trips_through_json() {
        let email = EmailContent {
            subject: "s".to_owned(),
            html: "<p>h</p>".to_owned(),
            text: "t".to_owned(),
        };
        let json = serde_json::to_value(&email).unwrap();
        assert_eq!(
            json,
            json!({"subject": "s", "html": "<p>h</p>", "text": "t"})
        );
        assert_eq!(serde_json::from_value::<EmailContent>(json).unwrap(), email);
    }
}
