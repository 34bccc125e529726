//! `aiworklab agent mcp`: a Model Context Protocol server over stdio
//! (the `rmcp` SDK) that the coding agent starts, so it can ask how well
//! the engineer knows the concepts it is about to explain.
//!
//! Four tools: `skill_profile` (state, recall and how to pitch an
//! explanation, per concept named or shown by a snippet) and
//! `tag_concepts` (the concepts a snippet shows) only read: a tool's
//! input is tagged in memory and dropped, never stored, sent or logged.
//! `comprehension_check` and `answer_check` (`check_tools`) let the agent
//! offer a check inline at the end of its reply and record the result;
//! the reply is graded and dropped.
//! Stdout carries protocol messages only; a failure of the kernel's own
//! is a line in the kernel's log that names no input.

pub mod check_tools;
pub mod tools;

use std::sync::{Arc, Mutex, PoisonError};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{Json, ServerHandler, ServiceExt, tool, tool_handler, tool_router};

use super::home::Home;
use super::hook;
use super::store::LocalStore;
use super::tag::Tagger;
use check_tools::{AnswerInput, CheckInput, CheckOffer, CheckResult};
use tools::{Profile, ProfileInput, TagInput, Tagged};

/// The server's name in `initialize` and in the harnesses' settings.
pub const SERVER_NAME: &str = "aiworklab";

const INSTRUCTIONS: &str = "The engineer's own skill graph, kept on this machine by the aiworklab \
kernel. Before explaining code or a concept, call `skill_profile` with the concept slugs or the \
code snippet, and pitch the explanation at each concept's state (its `pitch` says how). \
`tag_concepts` names the catalogue concepts a snippet shows. Inputs are read in memory only: \
never stored or sent. When you finish a task that used a concept, you may call \
`comprehension_check` and, if it returns a question, offer it at the very end of your reply; \
pass the engineer's reply to `answer_check`.";

/// The open store and a tagger for its catalogue, made on first use;
/// the question bank once a check is asked.
struct Kernel {
    store: LocalStore,
    tagger: Tagger,
    bank: Option<crate::checks::Bank>,
}

impl Kernel {
    fn open(home: &Home) -> Result<Kernel, String> {
        let mut store = LocalStore::open(home).map_err(|e| e.to_string())?;
        if let Some(w) = store.take_warning() {
            hook::log_as(&home.log_path(), "mcp", &w);
        }
        let tagger = Tagger::new(store.catalogue().map_err(|e| e.to_string())?);
        Ok(Kernel {
            store,
            tagger,
            bank: None,
        })
    }

    /// The shipped question bank, loaded on first use.
    fn bank(&mut self) -> Result<(&mut LocalStore, &crate::checks::Bank), String> {
        if self.bank.is_none() {
            let builtin = crate::skill::Catalogue::builtin()?;
            self.bank = Some(crate::checks::Bank::builtin(&builtin).map_err(|e| e.to_string())?);
        }
        let bank = self
            .bank
            .as_ref()
            .ok_or_else(|| "the question bank did not load".to_string())?;
        Ok((&mut self.store, bank))
    }

    /// Reads the hooks' pending signals into the store first (waiting for
    /// a running ingest worker), so the engineer's state is the latest; a
    /// failure is logged and the store answers with what it holds.
    fn catch_up(&mut self) {
        if let Err(e) = super::ingest::catch_up(&mut self.store) {
            let log = Home::at(
                self.store
                    .path()
                    .parent()
                    .unwrap_or(std::path::Path::new(".")),
            )
            .log_path();
            hook::log_as(
                &log,
                "mcp",
                &format!("the latest events could not be read: {e}"),
            );
        }
    }

    /// A sync may have brought a new catalogue copy: tag with it.
    fn refresh_catalogue(&mut self) -> Result<(), String> {
        let current = self.store.catalogue().map_err(|e| e.to_string())?;
        if !current.concepts().eq(self.tagger.catalogue().concepts()) {
            self.tagger = Tagger::new(current);
        }
        Ok(())
    }
}

/// The MCP server: the kernel's home and, once a tool ran, its store.
#[derive(Clone)]
pub struct KernelMcp {
    home: Result<Home, String>,
    kernel: Arc<Mutex<Option<Kernel>>>,
    tool_router: ToolRouter<Self>,
}

impl KernelMcp {
    /// A server for the kernel at `home` (the error is what every tool
    /// answers when the kernel's directory is unknown).
    pub fn new(home: Result<Home, String>) -> Self {
        Self {
            home,
            kernel: Arc::new(Mutex::new(None)),
            tool_router: Self::tool_router(),
        }
    }

    /// Runs `work` on the blocking pool with the kernel open (the store
    /// may ask the OS keychain, which blocks). A panic becomes a tool
    /// error; the panic hook set by [`serve`] logs where, not what.
    async fn with_kernel<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Kernel) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let home = self.home.clone()?;
        let kernel = Arc::clone(&self.kernel);
        tokio::task::spawn_blocking(move || {
            let mut guard = kernel.lock().unwrap_or_else(PoisonError::into_inner);
            if guard.is_none() {
                *guard = Some(Kernel::open(&home)?);
            }
            let k = guard
                .as_mut()
                .ok_or_else(|| "the kernel did not open".to_string())?;
            k.refresh_catalogue()?;
            work(k)
        })
        .await
        .map_err(|_| {
            "the kernel failed inside (a line in kernel.log says where); the input was not kept"
                .to_string()
        })?
    }
}

#[tool_router]
impl KernelMcp {
    #[tool(
        name = "skill_profile",
        description = "How well the engineer knows concepts, from their local skill graph: for each concept named (catalogue slugs) or shown by a code snippet, its title, domain, state (unseen, seen, explained, demonstrated, retained, decaying), predicted recall now (once a check was graded) and how to pitch an explanation. Slugs the catalogue does not know are listed in `unknown`. Nothing is stored or sent."
    )]
    async fn skill_profile(
        &self,
        Parameters(input): Parameters<ProfileInput>,
    ) -> Result<Json<Profile>, String> {
        let now = chrono::Utc::now();
        self.with_kernel(move |k| {
            k.catch_up();
            tools::profile(&k.store, &mut k.tagger, &input, now)
        })
        .await
        .map(Json)
    }

    #[tool(
        name = "tag_concepts",
        description = "The catalogue concepts a code snippet shows, tagged on this machine with syntax trees and the org's concept matchers (comments and strings do not count). Give `language` (rust, python, go, typescript, tsx, javascript, sql, or a file name/extension) for code; without it the snippet is read as Markdown. Nothing is stored or sent."
    )]
    async fn tag_concepts(
        &self,
        Parameters(input): Parameters<TagInput>,
    ) -> Result<Json<Tagged>, String> {
        self.with_kernel(move |k| {
            tools::tag(&mut k.tagger, &input.snippet, input.language.as_deref())
        })
        .await
        .map(Json)
    }

    #[tool(
        name = "comprehension_check",
        description = "An optional comprehension check for the engineer on a concept they just worked with (a catalogue slug), or, without `concept`, on the concept most due for one by their memory schedule. Returns a question and its options but never the answer. Offer it only at the end of your reply, after the task is done, and never answer it yourself. The engineer's daily limit, snooze and cool-downs apply: when no check may be asked now, `question` is null and `note` says why; then say nothing about it."
    )]
    async fn comprehension_check(
        &self,
        Parameters(input): Parameters<CheckInput>,
    ) -> Result<Json<CheckOffer>, String> {
        let now = chrono::Utc::now();
        self.with_kernel(move |k| {
            k.catch_up();
            let (store, bank) = k.bank()?;
            check_tools::offer(store, bank, &input, now)
        })
        .await
        .map(Json)
    }

    #[tool(
        name = "answer_check",
        description = "Grades the engineer's reply to a `comprehension_check` question and records the result in their local skill graph (synced to their org as a concept-level fact). Pass `check_id` and the reply exactly as the engineer wrote it: an option's number or letter, or their words. Returns whether it was right, a grade (1 again to 4 easy), feedback, the right answer and the explanation to show them. The reply itself is never stored."
    )]
    async fn answer_check(
        &self,
        Parameters(input): Parameters<AnswerInput>,
    ) -> Result<Json<CheckResult>, String> {
        let now = chrono::Utc::now();
        let stamp = self
            .home
            .as_ref()
            .ok()
            .map(|h| hook::HookFiles::in_dir(h.dir()).sync_stamp);
        let result = self
            .with_kernel(move |k| check_tools::answer(&mut k.store, &input, now))
            .await?;
        // The result is queued; send it soon, as a turn's end would.
        if let (Some(stamp), Ok(bin)) = (stamp, std::env::current_exe()) {
            hook::sync_in_background(&bin, &stamp);
        }
        Ok(Json(result))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for KernelMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION"))
                    .with_title("aiworklab teaching kernel"),
            )
            .with_instructions(INSTRUCTIONS)
    }
}

/// Why the server stopped, without anything the client sent.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error(
        "the MCP client did not complete the initialize handshake on stdin; `aiworklab agent mcp` is started by a coding agent (see `aiworklab agent install`), not run by hand"
    )]
    Handshake,
    #[error("the MCP session ended abnormally; see the kernel's log")]
    Session,
}

/// Serves MCP on stdin/stdout until the client closes stdin. A panic is
/// logged to the kernel's log by location only: its message could quote
/// a tool's input.
///
/// # Errors
/// [`McpError`] when the client does not complete the handshake or the
/// session task fails.
pub async fn serve(home: Result<Home, String>) -> Result<(), McpError> {
    let log_path = home.as_ref().ok().map(Home::log_path);
    std::panic::set_hook(Box::new(move |info| {
        if let Some(p) = &log_path {
            let place = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            hook::log_as(p, "mcp", &format!("internal error at {place}"));
        }
    }));
    let running = KernelMcp::new(home)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|_| McpError::Handshake)?;
    running.waiting().await.map_err(|_| McpError::Session)?;
    Ok(())
}
