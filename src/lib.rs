//! mcp-warden: an MCP gateway that decides, call by call, whether an agent may use a
//! tool, and proves afterwards what it did and why.
//!
//! One module per stage of a call; data flows down this list and no module reaches back
//! up:
//!
//! | module      | owns |
//! |-------------|------|
//! | [`problem`]   | a located diagnostic (file, line, severity) shared by every loader |
//! | [`clock`]     | milliseconds for expiries: wall clock at start + monotonic time |
//! | [`escape`]    | text for people: control, bidi and invisible characters shown as escapes |
//! | [`seal`]      | state a client carries between rounds, sealed (AEAD) and bound to its call |
//! | [`secrets`]   | text that looks like a credential, masked with its kind and a digest |
//! | [`telemetry`] | what operators read: Prometheus metrics the stages report to, spans per request over OTLP, W3C trace context |
//! | [`config`]    | `warden.toml`: listeners, upstreams, identities, paths; checked once at load |
//! | [`rules`]     | argument rules that parse what they check: paths inside roots, URLs off private addresses |
//! | [`manifest`]  | tool-manifest files: tiers, argument constraints, redaction, pins |
//! | [`digest`]    | SHA-256 over RFC 8785 canonical JSON: argument digests, pins, the audit chain |
//! | [`arguments`] | JSON Schema of the tool + the manifest's constraints, compiled once |
//! | [`identity`]  | [`identity::Caller`]: the acting agent and its delegation chain |
//! | [`catalog`]   | namespaced tool name → upstream tool + manifest entry ([`catalog::ToolRef`]) |
//! | [`store`]     | state that outlives the process (approvals, grants): one SQLite pool, async, atomic updates, a change watch |
//! | [`grant`]     | just-in-time grants: time-boxed permissions policy consults, kept in the store |
//! | [`limits`]    | rate limits per identity (token buckets) and caps on waiting approvals |
//! | [`intent`]    | the caller's stated reason: schema injection, extraction, requirement |
//! | [`flows`]     | flow rules: what a session that read data with some labels may do next (only ever stricter) |
//! | [`session`]   | what a client session has done: the data labels it acquired from forwarded results |
//! | [`policy`]    | Casbin: allow / deny / approve / confirm for every identity in the chain, then flow rules; [`policy::Permitted`] |
//! | [`approval`]  | approval requests: their lifecycle over the store, separation of duties, quorum, expiry, single use, webhook |
//! | [`audit`]     | hash-chained JSON Lines, group-committed, signed checkpoints, `verify`, `show`; [`audit::Attested`] |
//! | [`upstream`]  | connections to tool servers (child process stdio, Streamable HTTP) |
//! | [`gateway`]   | the MCP server handler that wires the stages into `tools/list` and `tools/call` |
//! | [`transport`] | serving the gateway over stdio and Streamable HTTP |
//! | [`admin`]     | the approvers' listener: approvals page, JSON API, sign-in, health, readiness, metrics |
//! | [`check`]     | `mcp-warden check`: every problem in config, manifests, policy and upstreams |
//! | [`init`]      | `mcp-warden init --from`: a client's MCP servers put behind the gateway, with manifests, a starter policy and the client's new entry |
//! | [`demo`]      | the bundled demo tool server (`mcp-warden demo-tools`) |
//! | [`listener`]  | the TCP listener every HTTP server serves from (Nagle off) |
//! | [`cli`]       | the command line |
//!
//! A `tools/call` goes one way through the stages:
//!
//! ```text
//! client ─► transport ─► identity ─► catalog ─► integrity (pin) ─► intent ─► arguments
//!        ─► limits ─► policy (─► approval: park, wait for approvers, ask again with the grant)
//!        ── Permitted ──► audit "attempt" ── Attested ──► upstream ─► audit "outcome"
//! client ◄─ result, or a refusal that says what to do next (always audited)
//! ```
//!
//! The compiler proves the two rules that matter most: [`upstream::Upstreams::forward`]
//! accepts only an [`audit::Attested`], which only [`audit::AuditLog::attempt`] makes, and
//! only from a [`policy::Permitted`], which only [`policy::Policy::authorize`] makes.
//!
//! A request reads config, manifests, policy and catalog from one
//! [`gateway::Snapshot`], taken once ([`gateway::State::current`]) and passed down, so a
//! reload in the middle of a request never mixes generations.
//!
//! ## Locks
//!
//! - **State** is guarded by `std::sync::Mutex` or `RwLock`, held for a few statements
//!   and never across an `.await` (clippy's `await_holding_lock`, denied in CI).
//! - **A sequence with awaits that must run alone** (a reload or catalog refresh, an
//!   upstream reconnect, a JWKS refresh) holds a `tokio::sync` lock, the only ones
//!   there are: `clippy.toml` disallows those types, and each site says why with
//!   `#[expect(clippy::disallowed_types, reason = …)]`.
//! - **One lock at a time**, with two nestings, always in this order: a sequence's lock,
//!   then state locks; the session table, then one session's routes.
//! - **A poisoned lock** is recovered (`PoisonError::into_inner`) where its data is
//!   whole whatever panicked (a queue, a list replaced whole, a table of whole entries);
//!   elsewhere it reads as unavailable, and what needed it fails closed.
//! - **Blocking I/O** never runs on a tokio worker under a lock: the state database
//!   ([`store`]) runs its work on tokio's blocking threads, and the audit log writes
//!   on its own thread (or, with nothing else in flight, the caller's, holding only the
//!   log's tail).
#![forbid(unsafe_code)]

pub mod admin;
pub mod approval;
pub mod arguments;
pub mod audit;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod digest;
pub mod escape;
pub mod flows;
pub mod gateway;
pub mod grant;
pub mod identity;
pub mod init;
pub mod intent;
pub mod limits;
pub mod listener;
pub mod manifest;
pub mod policy;
pub mod problem;
pub mod rules;
pub mod seal;
pub mod secrets;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod transport;
pub mod upstream;
