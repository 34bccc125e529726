//! Configuration tests: precedence, every kind of error message, redaction.
//! `figment::Jail` gives each test its own working directory and restores
//! the environment afterwards.

// figment::Jail closures must return figment::Result, whose error is large.
#![allow(clippy::result_large_err)]

use std::path::Path;

use figment::Jail;

use super::*;

fn errors(r: Result<(Settings, Loaded), ConfigErrors>) -> ConfigErrors {
    match r {
        Ok(_) => panic!("configuration was accepted"),
        Err(e) => e,
    }
}

#[test]
fn defaults_then_file_then_env() {
    Jail::expect_with(|jail| {
        let (s, _) = load(None).expect("defaults are valid");
        assert_eq!(s.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.storage.data_dir, Path::new("./data"));
        assert_eq!(s.keys.master_key_file, Path::new("./data/master.key"));
        assert_eq!(s.audit.retention_days, 395);
        assert_eq!(s.orgs.len(), 1);
        assert_eq!(s.orgs[0].slug.as_str(), "default");
        assert_eq!(s.server.tls_min_version, TlsVersion::V1_3);

        jail.create_file(
            "a.toml",
            r#"
                [server]
                bind = "127.0.0.1:9000"
                [storage]
                data_dir = "/srv/aiwl"
                [audit]
                retention_days = 380
                [[orgs]]
                slug = "acme"
                name = "Acme"
            "#,
        )?;
        let (s, loaded) = load(Some(Path::new("a.toml"))).expect("file is valid");
        assert_eq!(s.server.bind.port(), 9000);
        assert_eq!(s.storage.data_dir, Path::new("/srv/aiwl"));
        assert_eq!(s.keys.master_key_file, Path::new("/srv/aiwl/master.key"));
        assert_eq!(s.audit.retention_days, 380);
        assert_eq!(
            s.orgs[0].slug.as_str(),
            "acme",
            "file arrays replace defaults"
        );
        assert_eq!(s.orgs.len(), 1);
        assert_eq!(loaded.file.as_deref(), Some(Path::new("a.toml")));

        jail.set_env("AIWORKLAB_SERVER__BIND", "127.0.0.1:9100");
        jail.set_env("AIWORKLAB_AUDIT__RETENTION_DAYS", "400");
        jail.set_env("AIWORKLAB_CONFIG", "ignored-by-the-settings-provider");
        let (s, _) = load(Some(Path::new("a.toml"))).expect("env is valid");
        assert_eq!(s.server.bind.port(), 9100, "env beats file");
        assert_eq!(s.audit.retention_days, 400);
        assert_eq!(
            s.storage.data_dir,
            Path::new("/srv/aiwl"),
            "file beats default"
        );
        Ok(())
    });
}

#[test]
fn unknown_key_in_file_names_key_file_line_and_alternatives() {
    Jail::expect_with(|jail| {
        jail.create_file("a.toml", "[server]\nbnd = \"127.0.0.1:1\"\n")?;
        let e = errors(load(Some(Path::new("a.toml"))));
        let err = e.for_key("server.bnd").expect("names the key");
        assert!(err.problem.contains("unknown key"), "{err}");
        assert!(err.origin.contains("a.toml, line 2"), "{err}");
        assert!(err.fix.contains("bind"), "lists valid keys: {err}");
        Ok(())
    });
}

#[test]
fn wrong_type_from_env_names_the_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("AIWORKLAB_STORAGE__READ_POOL_SIZE", "many");
        let e = errors(load(None));
        let err = e.for_key("storage.read_pool_size").expect("names the key");
        assert!(
            err.origin.contains("AIWORKLAB_STORAGE__READ_POOL_SIZE"),
            "{err}"
        );
        assert!(err.problem.contains("wrong type"), "{err}");
        Ok(())
    });
}

#[test]
fn unknown_env_key_is_refused() {
    Jail::expect_with(|jail| {
        jail.set_env("AIWORKLAB_SERVR__BIND", "x");
        let e = errors(load(None));
        assert!(e.for_key("servr").is_some(), "{e}");
        Ok(())
    });
}

#[test]
fn invalid_values_each_name_key_origin_and_fix() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "a.toml",
            r#"[server]
bind = "localhost"
tls_min_version = "1.1"
trusted_proxies = ["10.0.0.0/8", "not-a-net"]
public_url = "http://skills.example.com"
[log]
format = "xml"
[audit]
retention_days = 10
[[orgs]]
slug = "../x"
name = "X"
[[orgs]]
slug = "ok"
name = ""
"#,
        )?;
        let e = errors(load(Some(Path::new("a.toml"))));
        let bind = e.for_key("server.bind").expect("bind");
        assert!(bind.origin.contains("line 2"), "{bind}");
        assert!(bind.fix.contains("127.0.0.1:8080"), "{bind}");
        assert!(e.for_key("server.tls_min_version").is_some(), "{e}");
        let proxy = e.for_key("server.trusted_proxies.1").expect("proxy");
        assert!(proxy.problem.contains("not-a-net"), "{proxy}");
        assert!(e.for_key("server.public_url").is_some(), "{e}");
        assert!(e.for_key("log.format").is_some(), "{e}");
        let retention = e.for_key("audit.retention_days").expect("retention");
        assert!(retention.fix.contains("from 30 to 3650"), "{retention}");
        let slug = e.for_key("orgs.0.slug").expect("slug");
        assert!(slug.origin.contains("line 11"), "{slug}");
        assert!(e.for_key("orgs.1.name").is_some(), "{e}");
        // The rendering lists every problem.
        let text = e.to_string();
        assert!(text.contains("8 problems"), "{text}");
        Ok(())
    });
}

#[test]
fn plain_http_off_loopback_is_refused_unless_behind_a_trusted_proxy() {
    Jail::expect_with(|jail| {
        jail.set_env("AIWORKLAB_SERVER__BIND", "0.0.0.0:8080");
        let e = errors(load(None));
        let err = e.for_key("server.bind").expect("bind");
        assert!(err.problem.contains("plain HTTP"), "{err}");
        assert!(err.origin.contains("AIWORKLAB_SERVER__BIND"), "{err}");
        assert!(err.fix.contains("tls_cert_file"), "{err}");

        jail.set_env("AIWORKLAB_SERVER__TRUSTED_PROXIES", "[\"10.1.2.3\"]");
        jail.set_env("AIWORKLAB_SERVER__PUBLIC_URL", "https://skills.example.com");
        let (s, _) = load(None).expect("behind a proxy is allowed");
        assert_eq!(s.server.trusted_proxies.len(), 1);
        Ok(())
    });
}

#[test]
fn half_configured_tls_names_the_missing_key() {
    Jail::expect_with(|jail| {
        jail.create_file("cert.pem", "x")?;
        jail.set_env("AIWORKLAB_SERVER__TLS_CERT_FILE", "cert.pem");
        let e = errors(load(None));
        assert!(e.for_key("server.tls_key_file").is_some(), "{e}");
        Ok(())
    });
}

#[test]
fn missing_explicit_file_is_an_error() {
    Jail::expect_with(|_| {
        let e = errors(load(Some(Path::new("nope.toml"))));
        assert!(e.to_string().contains("nope.toml"), "{e}");
        Ok(())
    });
}

#[test]
fn secrets_are_redacted_everywhere_they_are_shown() {
    Jail::expect_with(|jail| {
        jail.set_env("AIWORKLAB_METRICS__TOKEN", "s3cret-scrape-token");
        let (s, loaded) = load(None).expect("valid");
        let token = s.metrics.token.as_ref().expect("token");
        assert_eq!(token.expose(), "s3cret-scrape-token");
        assert!(!format!("{s:?}").contains("s3cret"), "Debug leaks");
        let shown = render_redacted(&loaded.raw);
        assert!(!shown.contains("s3cret"), "config show leaks: {shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        Ok(())
    });
}

#[test]
fn secret_files_are_read_and_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    Jail::expect_with(|jail| {
        let path = jail.directory().join("token");
        std::fs::write(&path, "from-a-file\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        jail.set_env("AIWORKLAB_METRICS__TOKEN_FILE", path.display());
        let e = errors(load(None));
        let err = e.for_key("metrics.token_file").expect("perm error");
        assert!(err.fix.starts_with("chmod 600"), "{err}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let (s, loaded) = load(None).expect("valid");
        assert_eq!(
            s.metrics.token.as_ref().map(Secret::expose),
            Some("from-a-file")
        );
        assert!(!render_redacted(&loaded.raw).contains("from-a-file"));

        jail.set_env("AIWORKLAB_METRICS__TOKEN", "inline");
        let e = errors(load(None));
        assert!(
            e.for_key("metrics.token").is_some(),
            "both set is refused: {e}"
        );
        Ok(())
    });
}

#[test]
fn shipped_example_holds_every_key_with_its_default() {
    let text = include_str!("../../config/aiworklab.toml");
    // The file's literal content (no serde defaults filled in) must equal the
    // built-in defaults: every key present, every value the default.
    let literal: serde_json::Value = toml_edit::de::from_str(text).expect("example parses");
    let defaults = serde_json::to_value(RawConfig::default()).expect("serialisable");
    assert_eq!(
        literal, defaults,
        "config/aiworklab.toml and the defaults differ"
    );
}

#[test]
fn packaged_configuration_is_valid() {
    let text = include_str!("../../packaging/etc/aiworklab.toml");
    let raw: RawConfig =
        toml_edit::de::from_str(text).expect("packaged config parses with no unknown key");
    assert_eq!(raw.storage.data_dir, "/var/lib/aiworklab");
    from_raw(&raw).expect("packaged config validates");
}

#[test]
fn air_gapped_refuses_a_public_address_and_names_the_key() {
    Jail::expect_with(|jail| {
        let org = |issuer: &str| {
            format!(
                "[[orgs]]\nslug = \"acme\"\nname = \"Acme\"\n[orgs.oidc]\nissuer = \"{issuer}\"\nclient_id = \"aiwl\"\nclient_secret = \"s3cret\"\n"
            )
        };
        // Air-gapped: an issuer written as a public address is refused at load.
        jail.create_file(
            "a.toml",
            &format!("air_gapped = true\n{}", org("https://8.8.8.8/realms/acme")),
        )?;
        let e = errors(load(Some(Path::new("a.toml"))));
        let err = e.for_key("orgs.0.oidc.issuer").expect("names the issuer");
        assert!(
            err.problem.contains("air_gapped") && err.problem.contains("8.8.8.8"),
            "{err}"
        );
        assert!(err.fix.contains("egress_allow"), "{err}");
        // The same address listed, a private one, or not air-gapped: valid.
        jail.create_file(
            "b.toml",
            &format!(
                "air_gapped = true\negress_allow = [\"8.8.8.0/24\"]\n{}",
                org("https://8.8.8.8/realms/acme")
            ),
        )?;
        load(Some(Path::new("b.toml"))).expect("listed");
        jail.create_file(
            "c.toml",
            &format!(
                "air_gapped = true\n{}",
                org("https://10.20.0.5/realms/acme")
            ),
        )?;
        let (s, _) = load(Some(Path::new("c.toml"))).expect("private");
        assert!(s.egress.is_air_gapped());
        jail.create_file("d.toml", &org("https://8.8.8.8/realms/acme"))?;
        let (s, _) = load(Some(Path::new("d.toml"))).expect("not air-gapped");
        assert!(!s.egress.is_air_gapped());
        // A bad entry, and a list that would do nothing, are errors too.
        jail.create_file(
            "e.toml",
            "air_gapped = true\negress_allow = [\"https://idp.example.com\"]\n",
        )?;
        let e = errors(load(Some(Path::new("e.toml"))));
        assert!(e.for_key("egress_allow.0").is_some(), "{e}");
        jail.create_file("f.toml", "egress_allow = [\"idp.example.com\"]\n")?;
        let e = errors(load(Some(Path::new("f.toml"))));
        let err = e.for_key("egress_allow").expect("names the list");
        assert!(err.fix.contains("air_gapped = true"), "{err}");
        // From the environment as well.
        jail.set_env("AIWORKLAB_AIR_GAPPED", "true");
        let e = errors(load(Some(Path::new("d.toml"))));
        assert!(e.for_key("orgs.0.oidc.issuer").is_some(), "{e}");
        Ok(())
    });
}

#[test]
fn variables_of_the_build_and_the_kernel_are_not_configuration() {
    Jail::expect_with(|jail| {
        for var in [
            "AIWORKLAB_BUILD_DATE",
            "AIWORKLAB_GIT_COMMIT",
            "AIWORKLAB_AGENT_HOME",
            "AIWORKLAB_AGENT_KEYCHAIN",
            "AIWORKLAB_PAIRING_CODE",
            "AIWORKLAB_ADVISORY_SNAPSHOT",
            "AIWORKLAB_CI_CACHE",
        ] {
            jail.set_env(var, "x");
        }
        load(None).expect("not read as configuration keys");
        // Anything else under the prefix still is, and is checked.
        jail.set_env("AIWORKLAB_BUILD", "x");
        let e = errors(load(None));
        assert!(e.for_key("build").is_some(), "{e}");
        Ok(())
    });
}

fn model_key_file(dir: &Path, key: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("model.key");
    std::fs::write(&path, format!("{key}\n")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

#[test]
fn the_model_section_is_checked_and_its_key_read_from_its_file_only() {
    Jail::expect_with(|jail| {
        let (s, _) = load(None).expect("defaults");
        assert!(s.model.is_none(), "no [model], no model");
        let key = model_key_file(jail.directory(), "sk-MODEL-KEY-0123");
        jail.create_file(
            "m.toml",
            &format!(
                "[model]\nbase_url = \"http://127.0.0.1:8081/v1\"\nmodel = \"smol\"\napi_key_file = \"{}\"\n",
                key.display()
            ),
        )?;
        let (s, loaded) = load(Some(Path::new("m.toml"))).expect("valid");
        let m = s.model.as_ref().expect("model");
        assert_eq!(
            m.completions_url().as_str(),
            "http://127.0.0.1:8081/v1/chat/completions"
        );
        assert_eq!(
            m.api_key.as_ref().map(Secret::expose),
            Some("sk-MODEL-KEY-0123")
        );
        assert_eq!((m.timeout.as_secs(), m.max_concurrency), (20, 2));
        assert!(!format!("{s:?}").contains("MODEL-KEY"), "Debug leaks");
        assert!(
            !render_redacted(&loaded.raw).contains("MODEL-KEY"),
            "config show leaks"
        );
        // The key is never a configuration value.
        jail.set_env("AIWORKLAB_MODEL__API_KEY", "sk-inline");
        let e = errors(load(Some(Path::new("m.toml"))));
        assert!(e.to_string().contains("api_key"), "{e}");
        assert!(!e.to_string().contains("sk-inline"), "{e}");
        Ok(())
    });
}

#[test]
fn a_bad_model_section_names_each_key_and_its_fix() {
    Jail::expect_with(|jail| {
        let unreadable = jail.directory().join("absent.key");
        for (toml, key, says) in [
            (
                "base_url = \"http://models.example.com/v1\"\nmodel = \"m\"",
                "model.base_url",
                "https",
            ),
            (
                "base_url = \"ftp://127.0.0.1/v1\"\nmodel = \"m\"",
                "model.base_url",
                "https",
            ),
            (
                "base_url = \"not a url\"\nmodel = \"m\"",
                "model.base_url",
                "not a URL",
            ),
            (
                "base_url = \"http://127.0.0.1/v1/chat/completions\"\nmodel = \"m\"",
                "model.base_url",
                "API root",
            ),
            (
                "base_url = \"https://u:p@models.example.com/v1\"\nmodel = \"m\"",
                "model.base_url",
                "credentials",
            ),
            (
                "base_url = \"http://127.0.0.1/v1\"\nmodel = \"\"",
                "model.model",
                "printable",
            ),
            (
                "base_url = \"http://127.0.0.1/v1\"\nmodel = \"m\"\nmax_concurrency = 0",
                "model.max_concurrency",
                "no call",
            ),
            (
                "base_url = \"http://127.0.0.1/v1\"\nmodel = \"m\"\ntimeout_secs = 0",
                "model.timeout_secs",
                "out of range",
            ),
            (
                &format!(
                    "base_url = \"http://127.0.0.1/v1\"\nmodel = \"m\"\napi_key_file = \"{}\"",
                    unreadable.display()
                ),
                "model.api_key_file",
                "absent.key",
            ),
            (
                &format!(
                    "base_url = \"http://127.0.0.1/v1\"\nmodel = \"m\"\ntls_ca_file = \"{}\"",
                    unreadable.display()
                ),
                "model.tls_ca_file",
                "cannot read",
            ),
        ] {
            jail.create_file("bad.toml", &format!("[model]\n{toml}\n"))?;
            let e = errors(load(Some(Path::new("bad.toml"))));
            let err = e
                .for_key(key)
                .unwrap_or_else(|| panic!("{key} not named: {e}"));
            assert!(err.to_string().contains(says), "{key}: {err}");
            assert!(!err.fix.is_empty(), "{err}");
        }
        Ok(())
    });
}

#[test]
fn air_gapped_refuses_a_public_model_url_and_names_the_key() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "g.toml",
            "air_gapped = true\n[model]\nbase_url = \"https://8.8.8.8/v1\"\nmodel = \"m\"\n",
        )?;
        let e = errors(load(Some(Path::new("g.toml"))));
        let err = e.for_key("model.base_url").expect("named");
        assert!(err.to_string().contains("8.8.8.8"), "{err}");
        jail.create_file(
            "l.toml",
            "air_gapped = true\n[model]\nbase_url = \"https://10.1.2.3/v1\"\nmodel = \"m\"\n",
        )?;
        load(Some(Path::new("l.toml"))).expect("a private address is local");
        Ok(())
    });
}

#[test]
fn the_wait_for_a_new_check_is_at_most_the_model_timeout() {
    Jail::expect_with(|jail| {
        let model = "[model]\nbase_url = \"http://127.0.0.1/v1\"\nmodel = \"m\"\n";
        jail.create_file("d.toml", model)?;
        let (s, _) = load(Some(Path::new("d.toml"))).expect("the defaults are valid");
        let m = s.model.as_ref().expect("model");
        assert_eq!(m.generate_wait, std::time::Duration::from_secs(10));
        jail.create_file("s.toml", &format!("{model}timeout_secs = 4\n"))?;
        let (s, _) = load(Some(Path::new("s.toml"))).expect("a short timeout is valid");
        let m = s.model.expect("model");
        assert_eq!(
            m.generate_wait, m.timeout,
            "unset, no longer than the timeout"
        );
        for (wait, problem, fix) in [
            (
                "generate_wait_secs = 21",
                "longer than model.timeout_secs (20 s)",
                "at most 20",
            ),
            ("generate_wait_secs = 0", "out of range", "from 1 to 600"),
        ] {
            jail.create_file("t.toml", &format!("{model}{wait}\n"))?;
            let e = errors(load(Some(Path::new("t.toml"))));
            let err = e
                .for_key("model.generate_wait_secs")
                .unwrap_or_else(|| panic!("{wait}: not named: {e}"));
            assert!(err.to_string().contains(problem), "{err}");
            assert!(err.fix.contains(fix), "{wait}: {}", err.fix);
        }
        jail.create_file("w.toml", &format!("{model}generate_wait_secs = 20\n"))?;
        let (s, _) = load(Some(Path::new("w.toml"))).expect("as long as the timeout");
        assert_eq!(
            s.model.expect("model").generate_wait,
            std::time::Duration::from_secs(20)
        );
        Ok(())
    });
}

#[test]
fn a_model_timeout_that_would_outlast_the_request_timeout_is_refused() {
    Jail::expect_with(|jail| {
        // Both at 30 (the old defaults): a slow model made `checks/next`
        // answer 408 instead of drawing from the bank.
        for (server, model, fix) in [
            (
                "request_timeout_secs = 30",
                "timeout_secs = 30",
                "at most 25",
            ),
            (
                "request_timeout_secs = 30",
                "timeout_secs = 26",
                "at most 25",
            ),
            (
                "request_timeout_secs = 10",
                "timeout_secs = 20",
                "at least 25",
            ),
            ("request_timeout_secs = 3", "timeout_secs = 1", "at least 6"),
        ] {
            jail.create_file(
                "t.toml",
                &format!(
                    "[server]\n{server}\n[model]\nbase_url = \"http://127.0.0.1/v1\"\nmodel = \"m\"\n{model}\n"
                ),
            )?;
            let e = errors(load(Some(Path::new("t.toml"))));
            let err = e
                .for_key("model.timeout_secs")
                .unwrap_or_else(|| panic!("{server} {model}: not named: {e}"));
            let text = err.to_string();
            assert!(text.contains("server.request_timeout_secs"), "{text}");
            assert!(text.contains("408"), "{text}");
            assert!(err.fix.contains(fix), "{server} {model}: {}", err.fix);
            assert!(
                err.fix.contains("server.request_timeout_secs"),
                "{}",
                err.fix
            );
        }
        // The defaults leave the bank its margin, and so does 25 of 30.
        jail.create_file(
            "d.toml",
            "[model]\nbase_url = \"http://127.0.0.1/v1\"\nmodel = \"m\"\n",
        )?;
        let (s, _) = load(Some(Path::new("d.toml"))).expect("the defaults are valid");
        let m = s.model.as_ref().expect("model");
        assert!(m.timeout < s.server.request_timeout, "{m:?}");
        jail.create_file(
            "e.toml",
            "[model]\nbase_url = \"http://127.0.0.1/v1\"\nmodel = \"m\"\ntimeout_secs = 25\n",
        )?;
        load(Some(Path::new("e.toml"))).expect("25 of 30 leaves 5 s");
        Ok(())
    });
}

#[test]
fn an_orgs_settings_page_shows_its_own_entry_with_secrets_redacted() {
    let mut raw = RawConfig::default();
    raw.metrics.token = "s3cret-scrape-token".into();
    for slug in ["acme", "other"] {
        raw.orgs.push(RawOrg {
            slug: slug.into(),
            name: format!("Org {slug}"),
            oidc: Some(RawOidc {
                issuer: format!("https://{slug}.idp.test"),
                client_id: format!("client-{slug}"),
                client_secret: format!("oidc-secret-{slug}"),
                ..RawOidc::default()
            }),
            ..RawOrg::default()
        });
    }
    let shown = redacted(&raw);
    assert!(
        !format!("{shown:?}").contains("secret-"),
        "Debug of the redacted copy leaks"
    );
    let page = render_for_org(&shown, "acme");
    assert!(
        page.contains("client-acme") && page.contains("<redacted>"),
        "{page}"
    );
    for leak in ["s3cret", "oidc-secret", "slug = \"other\"", "client-other"] {
        assert!(
            !page.contains(leak),
            "{leak} on acme's settings page: {page}"
        );
    }
}
