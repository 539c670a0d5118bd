//! The page shell every page shares: head, navigation, who is logged in.

use maud::{html, Markup, DOCTYPE};

/// Who is looking at a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Viewer {
    /// May press buttons that change something.
    pub can_act: bool,
    /// Has a session that can be ended (a token is configured).
    pub logged_in: bool,
}

/// A whole page around `body`.
pub(crate) fn page(title: &str, viewer: Option<Viewer>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · decsweep" }
                link rel="stylesheet" href="/assets/dashboard.css";
                script src="/assets/dashboard.js" defer {}
            }
            body {
                nav {
                    a.brand href="/" { "decsweep" }
                    a href="/" { "Studies" }
                    a href="/workers" { "Workers" }
                    @if let Some(v) = viewer {
                        span.spacer {}
                        @if !v.can_act { span.badge #view-only { "view only" } }
                        @if v.logged_in {
                            form.inline method="post" action="/logout" {
                                button type="submit" #logout { "Log out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A status word as a coloured label.
pub(crate) fn status(name: &str) -> Markup {
    html! { span class={ "status s-" (name) } { (name) } }
}
