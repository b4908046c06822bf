//! A client's servers as `[[upstream]]` entries: ids the gateway accepts, derived from
//! the servers' names, and no credential in clear. init cannot tell a secret from a
//! setting, so every literal value of `env` and `headers`, and any argument that looks
//! like a credential, moves into the env file and is referred to as `${ID_NAME}`.

use std::collections::{BTreeMap, BTreeSet};

use super::clients::{Server, Transport};
use crate::config::env_file;
use crate::manifest::skeleton::{quoted, toml_key};

/// One server as the gateway will front it.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub id: String,
    /// Its name in the client's file.
    pub name: String,
    /// Its `[[upstream]]` table.
    pub toml: String,
}

/// What becomes of a client's servers.
#[derive(Debug, Default)]
pub struct Plan {
    pub upstreams: Vec<Upstream>,
    /// Variables for the env file: values moved out of the config, and defaults.
    pub vars: BTreeMap<String, String>,
    /// What was moved, for the warning (`env FOO of `fs``).
    pub moved: Vec<String>,
    /// Servers left out, with why.
    pub skipped: Vec<(String, String)>,
}

pub fn plan(servers: &[Server]) -> Plan {
    let mut plan = Plan::default();
    let mut ids = BTreeSet::new();
    for server in servers {
        if let Transport::Skipped(why) = &server.transport {
            plan.skipped.push((server.name.clone(), why.clone()));
            continue;
        }
        let id = derive_id(&server.name, &ids);
        let mut vars = server.defaults.clone();
        let mut moved = Vec::new();
        let transport = hide_secrets(&id, &server.transport, &mut vars, &plan.vars, &mut moved);
        if let Some(missing) = unset_reference(&transport, &vars, &plan.vars) {
            plan.skipped.push((
                server.name.clone(),
                format!("refers to `${{{missing}}}`, which is not set here: set it (or give it a value in the client's file) and run init again"),
            ));
            continue;
        }
        ids.insert(id.clone());
        plan.moved
            .extend(moved.into_iter().map(|m| format!("{m} of `{id}`")));
        for (k, v) in vars {
            plan.vars.entry(k).or_insert(v);
        }
        plan.upstreams.push(Upstream {
            toml: render(&id, &server.name, &transport),
            id,
            name: server.name.clone(),
        });
    }
    plan
}

/// An upstream id from a server's name: lowercase letters, digits and `-`, starting with
/// a letter, at most 32 characters, and not yet `taken`.
pub fn derive_id(name: &str, taken: &BTreeSet<String>) -> String {
    let mut id = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        match c {
            'a'..='z' | '0'..='9' => id.push(c),
            _ if !id.ends_with('-') && !id.is_empty() => id.push('-'),
            _ => {}
        }
    }
    let mut id = id.trim_end_matches('-').to_string();
    if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        id.insert_str(0, "mcp-");
    }
    id.truncate(28);
    let id = id.trim_end_matches('-').to_string();
    let unique = std::iter::once(id.clone()).chain((2..).map(|n| format!("{id}-{n}")));
    unique
        .into_iter()
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or(id)
}

/// The transport with every literal `env`/`headers` value and every credential-like
/// argument replaced by a `${VAR}` whose value goes to `vars`.
fn hide_secrets(
    id: &str,
    transport: &Transport,
    vars: &mut BTreeMap<String, String>,
    taken: &BTreeMap<String, String>,
    moved: &mut Vec<String>,
) -> Transport {
    let mut hide = |what: &str, key: &str, value: &str| -> String {
        if value.contains("${") {
            return value.to_string(); // already a reference, kept as the client wrote it
        }
        let var = var_name(id, key, |v| vars.contains_key(v) || taken.contains_key(v));
        vars.insert(var.clone(), value.to_string());
        moved.push(format!("{what} `{key}`"));
        format!("${{{var}}}")
    };
    match transport {
        Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            let args = args
                .iter()
                .enumerate()
                .map(|(i, a)| match credential_arg(args, i) {
                    true => hide("argument", &format!("arg{}", i + 1), a),
                    false => a.clone(),
                })
                .collect();
            let env = env
                .iter()
                .map(|(k, v)| (k.clone(), hide("env", k, v)))
                .collect();
            Transport::Stdio {
                command: command.clone(),
                args,
                env,
                cwd: cwd.clone(),
            }
        }
        Transport::Http { url, headers } => Transport::Http {
            url: match url_has_credentials(url) {
                true => hide("url", "url", url),
                false => url.clone(),
            },
            headers: headers
                .iter()
                .map(|(k, v)| (k.clone(), hide("header", k, v)))
                .collect(),
        },
        Transport::Skipped(why) => Transport::Skipped(why.clone()),
    }
}

/// `ID_KEY` in capitals, `_` for anything else, made unique.
fn var_name(id: &str, key: &str, taken: impl Fn(&str) -> bool) -> String {
    let base: String = format!("{id}_{key}")
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() {
            true => c.to_ascii_uppercase(),
            false => '_',
        })
        .collect();
    std::iter::once(base.clone())
        .chain((2..).map(|n| format!("{base}_{n}")))
        .find(|v| !taken(v) && env_file::valid_name(v))
        .unwrap_or(base)
}

/// Whether argument `i` looks like a credential: a known secret format, a URL with a
/// password, or the value of (or in) a `--token`/`--api-key`/`--password`-like option.
fn credential_arg(args: &[String], i: usize) -> bool {
    let Some(arg) = args.get(i) else { return false };
    let secretive = |opt: &str| {
        let opt = opt.trim_start_matches('-').to_ascii_lowercase();
        [
            "token",
            "key",
            "secret",
            "password",
            "passwd",
            "credential",
            "auth",
        ]
        .iter()
        .any(|w| opt.contains(w))
    };
    let option_value = arg
        .split_once('=')
        .is_some_and(|(opt, _)| opt.starts_with('-') && secretive(opt));
    let after_option = i
        .checked_sub(1)
        .and_then(|p| args.get(p))
        .is_some_and(|prev| prev.starts_with('-') && !prev.contains('=') && secretive(prev));
    option_value
        || (after_option && !arg.starts_with('-'))
        || crate::secrets::scrub_str(arg) != arg.as_str()
        || url_has_credentials(arg)
}

/// `scheme://user:password@…`, or a query parameter named like a credential
/// (`?api_key=…`, `&token=…`).
fn url_has_credentials(text: &str) -> bool {
    let Some((_, rest)) = text.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let password = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    let query = rest.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let secret_param = query.split(['&', '#']).any(|pair| {
        let name = pair
            .split('=')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        SECRET_WORDS.iter().any(|w| name.contains(w))
    });
    password || secret_param
}

/// Parts of a name that say its value is a credential.
const SECRET_WORDS: &[&str] = &[
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "credential",
    "auth",
    "signature",
];

/// The first `${NAME}` that neither the environment nor the env file gives.
fn unset_reference(
    transport: &Transport,
    vars: &BTreeMap<String, String>,
    file: &BTreeMap<String, String>,
) -> Option<String> {
    let values: Vec<&String> = match transport {
        Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } => std::iter::once(command)
            .chain(args)
            .chain(env.values())
            .chain(cwd)
            .collect(),
        Transport::Http { url, headers } => std::iter::once(url).chain(headers.values()).collect(),
        Transport::Skipped(_) => Vec::new(),
    };
    values.into_iter().find_map(|v| {
        references(v).into_iter().find(|name| {
            std::env::var_os(name).is_none()
                && !vars.contains_key(name)
                && !file.contains_key(name)
                && name != crate::config::SELF_EXE_VAR
        })
    })
}

fn references(value: &str) -> Vec<String> {
    let mut names = Vec::new();
    let _ = crate::config::substitute(value, |name| {
        names.push(name.to_string());
        Ok(String::new())
    });
    names
}

fn render(id: &str, name: &str, transport: &Transport) -> String {
    let mut out = format!(
        "[[upstream]]\nid = {}  # {} in the client's config\n",
        quoted(id),
        quoted(name)
    );
    let list = |items: &[String]| {
        let quoted: Vec<String> = items.iter().map(|s| quoted(s)).collect();
        format!("[{}]", quoted.join(", "))
    };
    let table = |items: &BTreeMap<String, String>| {
        let pairs: Vec<String> = items
            .iter()
            .map(|(k, v)| format!("{} = {}", toml_key(k), quoted(v)))
            .collect();
        format!("{{ {} }}", pairs.join(", "))
    };
    match transport {
        Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            out.push_str(&format!("command = {}\n", quoted(command)));
            if !args.is_empty() {
                out.push_str(&format!("args = {}\n", list(args)));
            }
            if !env.is_empty() {
                out.push_str(&format!("env = {}\n", table(env)));
            }
            if let Some(cwd) = cwd {
                out.push_str(&format!("cwd = {}\n", quoted(cwd)));
            }
        }
        Transport::Http { url, headers } => {
            out.push_str(&format!("url = {}\n", quoted(url)));
            if !headers.is_empty() {
                out.push_str(&format!("headers = {}\n", table(headers)));
            }
        }
        Transport::Skipped(_) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdio(args: &[&str], env: &[(&str, &str)]) -> Transport {
        Transport::Stdio {
            command: "npx".into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cwd: None,
        }
    }

    fn server(name: &str, transport: Transport) -> Server {
        Server {
            name: name.into(),
            transport,
            defaults: BTreeMap::new(),
        }
    }

    #[test]
    fn ids_are_valid_and_distinct_whatever_the_names() {
        let mut taken = BTreeSet::new();
        for (name, want) in [
            ("filesystem", "filesystem"),
            ("My Files!", "my-files"),
            ("my_files", "my-files-2"),
            ("42", "mcp-42"),
            ("ёжик", "mcp"),
            (
                "a-very-long-server-name-that-goes-on-and-on",
                "a-very-long-server-name-that",
            ),
        ] {
            let id = derive_id(name, &taken);
            assert_eq!(id, want, "{name}");
            assert!(crate::config::valid_server_id(&id).is_ok(), "{id}");
            taken.insert(id);
        }
    }

    #[test]
    fn no_value_of_env_or_headers_and_no_credential_argument_stays_in_clear() {
        let servers = [
            server(
                "gh",
                stdio(
                    &[
                        "-y",
                        "srv",
                        "--token",
                        "abc123",
                        "--api-key=k9",
                        "postgres://u:pw@db/x",
                        "https://h/mcp?v=1&api_key=q7",
                        "/srv/data",
                    ],
                    &[
                        ("GITHUB_TOKEN", "ghp_x"),
                        ("MODE", "fast"),
                        ("REF", "${ALREADY}"),
                    ],
                ),
            ),
            server(
                "web",
                Transport::Http {
                    url: "https://h/mcp".into(),
                    headers: BTreeMap::from([("Authorization".into(), "Bearer s3cr3t".into())]),
                },
            ),
        ];
        // SAFETY-free: a test reads only; `ALREADY` is set as a default instead.
        let mut servers = servers.to_vec();
        servers[0].defaults.insert("ALREADY".into(), "x".into());
        let plan = plan(&servers);
        assert!(plan.skipped.is_empty(), "{:?}", plan.skipped);
        let toml: String = plan.upstreams.iter().map(|u| u.toml.clone()).collect();
        for secret in ["abc123", "k9", "u:pw", "q7", "ghp_x", "fast", "s3cr3t"] {
            assert!(!toml.contains(secret), "{secret} in clear:\n{toml}");
            assert!(
                plan.vars.values().any(|v| v.contains(secret)),
                "{secret} kept"
            );
        }
        for kept in [
            "\"-y\"",
            "\"--token\"",
            "\"/srv/data\"",
            "${ALREADY}",
            "https://h/mcp",
        ] {
            assert!(toml.contains(kept), "{kept} lost:\n{toml}");
        }
        assert_eq!(plan.vars["GH_GITHUB_TOKEN"], "ghp_x");
        assert_eq!(plan.vars["WEB_AUTHORIZATION"], "Bearer s3cr3t");
        assert!(
            toml.contains("GITHUB_TOKEN = \"${GH_GITHUB_TOKEN}\""),
            "{toml}"
        );
        let parsed: toml::Value = toml::from_str(&toml).unwrap();
        assert_eq!(parsed["upstream"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_reference_nobody_sets_skips_the_server_with_the_name() {
        let plan = plan(&[server(
            "x",
            stdio(&[], &[("K", "${MCP_WARDEN_SURELY_UNSET_VAR}")]),
        )]);
        assert!(plan.upstreams.is_empty());
        assert!(
            plan.skipped[0]
                .1
                .contains("`${MCP_WARDEN_SURELY_UNSET_VAR}`")
        );
    }
}
