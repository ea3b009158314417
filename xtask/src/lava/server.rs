//! A LAVA server through its REST API (v0.2): submit a job definition, read a job's state,
//! definition and log. Authenticated with an API token (`Authorization: Token ...`) when one is
//! given; reading public jobs needs none.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// A response larger than this is refused (a job log of a full plan is a few MiB).
const MAX_BODY: u64 = 512 << 20;

/// One LAVA server.
pub struct Server {
    /// The base URL, without a trailing `/`.
    pub url: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// What the server says about a job.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct JobStatus {
    pub id: u64,
    /// `Submitted`, `Scheduling`, `Scheduled`, `Running`, `Canceling` or `Finished`.
    pub state: String,
    /// `Unknown` until finished; then `Complete`, `Incomplete` or `Canceled`.
    pub health: String,
    #[serde(default)]
    pub actual_device: Option<String>,
    #[serde(default)]
    pub requested_device_type: Option<String>,
    #[serde(default)]
    pub definition: String,
}

impl JobStatus {
    pub fn finished(&self) -> bool {
        self.state == "Finished"
    }
}

#[derive(Deserialize)]
struct Submitted {
    job_ids: Vec<u64>,
}

impl Server {
    pub fn new(url: &str, token: Option<&str>) -> anyhow::Result<Server> {
        let url = url.trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--server {url}: expected an http:// or https:// URL of the LAVA server");
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(120)))
            .http_status_as_error(false)
            .build();
        Ok(Server {
            url,
            token: token.map(str::to_string),
            agent: config.into(),
        })
    }

    fn auth<B>(&self, r: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => r.header("Authorization", format!("Token {t}")),
            None => r,
        }
    }

    /// The body of a response, or an error naming the request and what the server said.
    fn body(
        &self,
        what: &str,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> anyhow::Result<String> {
        let mut resp = resp.map_err(|e| anyhow::anyhow!("{what} at {}: {e}", self.url))?;
        let status = resp.status();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .lossy_utf8(true)
            .read_to_string()
            .with_context(|| format!("{what}: reading the server's answer"))?;
        if !status.is_success() {
            let detail: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let detail: String = detail.chars().take(300).collect();
            let hint = match status.as_u16() {
                401 | 403 => " (is --token a valid API token of a user allowed to do this?)",
                404 => " (no such job, or not a LAVA server at this URL)",
                _ => "",
            };
            bail!("{what}: the server answered {status}{hint}: {detail}");
        }
        Ok(text)
    }

    /// Submit a job definition; its job id.
    pub fn submit(&self, definition: &str) -> anyhow::Result<u64> {
        let body = serde_json::json!({ "definition": definition }).to_string();
        let req = self
            .auth(self.agent.post(format!("{}/api/v0.2/jobs/", self.url)))
            .content_type("application/json");
        let text = self.body("submitting the job", req.send(body))?;
        let s: Submitted = serde_json::from_str(&text).with_context(|| {
            format!("the server's answer to the submission is not a job id: {text}")
        })?;
        match s.job_ids[..] {
            [id] => Ok(id),
            _ => bail!("the server made {} jobs of one definition", s.job_ids.len()),
        }
    }

    /// A job's state, health, device and definition.
    pub fn status(&self, id: u64) -> anyhow::Result<JobStatus> {
        let req = self.auth(self.agent.get(format!("{}/api/v0.2/jobs/{id}/", self.url)));
        let text = self.body(&format!("reading job {id}"), req.call())?;
        serde_json::from_str(&text).with_context(|| format!("job {id}: unexpected answer: {text}"))
    }

    /// A job's whole log (YAML, one record per line).
    pub fn log(&self, id: u64) -> anyhow::Result<String> {
        self.log_from(id, 0)?
            .with_context(|| format!("job {id} has no log on the server"))
    }

    /// A job's log from line `start` on; `None` when there is nothing (yet) from there.
    pub fn log_from(&self, id: u64, start: usize) -> anyhow::Result<Option<String>> {
        let mut url = format!("{}/api/v0.2/jobs/{id}/logs/", self.url);
        if start > 0 {
            url.push_str(&format!("?start={start}"));
        }
        let req = self.auth(self.agent.get(url));
        let resp = req.call();
        // The server answers 404 for a log with no lines from `start` on.
        if let Ok(r) = &resp
            && r.status() == 404
        {
            return Ok(None);
        }
        self.body(&format!("reading job {id}'s log"), resp)
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// A one-connection-per-answer HTTP server on the loopback: answers each request with the
    /// next (status, body), and hands back the requests it got.
    fn serve(answers: Vec<(u16, &'static str)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, body) in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut r = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut l = String::new();
                    r.read_line(&mut l).unwrap();
                    if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if l == "\r\n" {
                        break;
                    }
                    head.push_str(&l.to_ascii_lowercase());
                }
                let mut body_in = vec![0u8; len];
                r.read_exact(&mut body_in).unwrap();
                head.push_str(&String::from_utf8_lossy(&body_in));
                seen.push(head);
                let mut w = stream;
                write!(
                    w,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
            seen
        });
        (url, handle)
    }

    #[test]
    fn submit_status_and_log_speak_the_rest_api() {
        let (url, h) = serve(vec![
            (
                201,
                r#"{"message": "job(s) successfully submitted", "job_ids": [17]}"#,
            ),
            (
                200,
                r#"{"id": 17, "state": "Finished", "health": "Complete", "actual_device": "qemu01", "definition": "x"}"#,
            ),
            (200, "- {\"lvl\": \"target\", \"msg\": \"hi\"}\n"),
            (404, "{\"detail\": \"Not found.\"}"),
        ]);
        let s = Server::new(&format!("{url}/"), Some("sekrit")).unwrap();
        assert_eq!(s.submit("device_type: qemu\n").unwrap(), 17);
        let st = s.status(17).unwrap();
        assert!(st.finished());
        assert_eq!(st.actual_device.as_deref(), Some("qemu01"));
        assert!(s.log_from(17, 5).unwrap().unwrap().contains("hi"));
        assert_eq!(s.log_from(17, 9).unwrap(), None);
        let seen = h.join().unwrap();
        assert!(seen[0].starts_with("post /api/v0.2/jobs/ "), "{}", seen[0]);
        assert!(
            seen[0].contains("authorization: token sekrit"),
            "{}",
            seen[0]
        );
        assert!(
            seen[0].contains(r#"{"definition":"device_type: qemu\n"}"#),
            "{}",
            seen[0]
        );
        assert!(
            seen[1].starts_with("get /api/v0.2/jobs/17/ "),
            "{}",
            seen[1]
        );
        assert!(
            seen[2].starts_with("get /api/v0.2/jobs/17/logs/?start=5 "),
            "{}",
            seen[2]
        );
    }

    #[test]
    fn refusals_are_one_line_with_a_hint() {
        let (url, h) = serve(vec![(401, "{\"detail\": \"Invalid token.\"}")]);
        let s = Server::new(&url, Some("bad")).unwrap();
        let e = s.submit("x").unwrap_err().to_string();
        assert!(
            e.starts_with("submitting the job: the server answered 401"),
            "{e}"
        );
        assert!(e.contains("--token") && e.contains("Invalid token."), "{e}");
        h.join().unwrap();
        assert!(Server::new("no-scheme-here", None).is_err());
    }
}
