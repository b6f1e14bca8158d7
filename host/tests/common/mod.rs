//! What the face-server tests share: the real binaries on loopback ports, real HTTP calls.

#![allow(dead_code)]

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn repo() -> PathBuf {
    // At run time (cargo test sets it): clones share one target folder.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .join("..")
}

pub fn cache() -> PathBuf {
    std::env::var_os("FACE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/face"))
}

pub fn guest_wasm() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("target"));
    let path = target.join("wasm32-wasip2/debug/face_wasm.wasm");
    assert!(path.exists(), "{} missing: build the guest with `cargo xtask guest`", path.display());
    path
}

pub fn photo(name: &str) -> Vec<u8> {
    std::fs::read(cache().join("testdata").join(name)).expect("run `cargo xtask testdata` first")
}

pub const KEY: &str = "server-test-key";

#[derive(Debug)]
pub struct Server {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("face-server-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn start(data: &Path, extra: &[&str]) -> Server {
    std::fs::create_dir_all(data).unwrap();
    let port = free_port();
    let log = data.join(format!("server-{port}.log"));
    let mut args = vec![
        "Eula=accept".to_owned(),
        "Billing=http://127.0.0.1:9/".to_owned(),
        format!("ApiKey={KEY}"),
        format!("Server:Address=127.0.0.1:{port}"),
        format!("Storage:DataDirectory={}", data.display()),
        format!("Engine:Guest={}", guest_wasm().display()),
        format!("Engine:Models={}", repo().join("models").display()),
        format!("Engine:Cache={}", cache().join("guest-cache").display()),
        "Engine:PoolSize=1".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let child = Command::new(env!("CARGO_BIN_EXE_face-server"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("face-server starts");
    let server = Server { child, base: format!("http://127.0.0.1:{port}"), log };
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(r) = agent().get(format!("{}/ready", server.base)).call()
            && r.status() == 200
        {
            return server;
        }
        assert!(Instant::now() < deadline, "not ready in 180 s; log:\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Server {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/face/v1.0{path}", self.base)
    }

    /// Sends a request with the key; returns status and JSON body (Null when empty).
    pub fn call(&self, method: &str, path: &str, body: Option<Body>) -> (u16, Value) {
        call(method, &self.url(path), Some(KEY), body)
    }
}

#[derive(Debug)]
pub enum Body {
    Json(Value),
    Bytes(&'static str, Vec<u8>),
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

pub fn call(method: &str, url: &str, key: Option<&str>, body: Option<Body>) -> (u16, Value) {
    let response = respond(method, url, key, body);
    let status = response.status().as_u16();
    let mut text = String::new();
    response.into_body().into_reader().read_to_string(&mut text).unwrap();
    let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, value)
}

/// [`call`]'s request, answered with the whole response (headers too).
pub fn respond(method: &str, url: &str, key: Option<&str>, body: Option<Body>) -> ureq::http::Response<ureq::Body> {
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    if let Some(k) = key {
        req = req.header("Ocp-Apim-Subscription-Key", k);
    }
    let (ct, bytes) = match body {
        None => (None, vec![]),
        Some(Body::Json(v)) => (Some("application/json"), serde_json::to_vec(&v).unwrap()),
        Some(Body::Bytes(ct, b)) => (Some(ct), b),
    };
    if let Some(ct) = ct {
        req = req.header("Content-Type", ct);
    }
    agent().run(req.body(bytes).unwrap()).expect("the server answers")
}

pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

pub fn image(bytes: Vec<u8>) -> Option<Body> {
    Some(Body::Bytes("application/octet-stream", bytes))
}

/// A running face-meter, killed on drop.
#[derive(Debug)]
pub struct MeterProcess {
    pub child: Child,
    pub port: u16,
}

impl Drop for MeterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MeterProcess {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// `(quantity, records, duplicatesReceived)` for the test key's transactions.
    pub fn totals(&self) -> (u64, u64, u64) {
        let (status, v) = call("GET", &format!("http://127.0.0.1:{}/v1/totals", self.port), Some(KEY), None);
        assert_eq!(status, 200, "{v}");
        let row = v["totals"].as_array().unwrap().iter().find(|r| r["meter"] == "face.transactions").cloned();
        let (q, r) = row.map(|r| (r["quantity"].as_u64().unwrap(), r["records"].as_u64().unwrap())).unwrap_or((0, 0));
        (q, r, v["duplicatesReceived"].as_u64().unwrap())
    }
}

/// Starts face-meter accepting `KEY` on `port` with its database in `dir`; waits until it answers.
pub fn start_meter(dir: &Path, port: u16) -> MeterProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_face-meter"))
        .arg(format!("Keys={KEY}"))
        .arg(format!("Address=127.0.0.1:{port}"))
        .arg(format!("DataDirectory={}", dir.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("face-meter starts");
    let meter = MeterProcess { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = || {
        agent().get(format!("http://127.0.0.1:{port}/v1/status")).header("Ocp-Apim-Subscription-Key", KEY).call().ok()
    };
    while status().is_none_or(|r| r.status() != 200) {
        assert!(Instant::now() < deadline, "face-meter did not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    meter
}

/// Waits until the server has no usage waiting for the meter (read from /metrics).
pub fn wait_backlog_empty(server: &Server, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let text = agent()
            .get(format!("{}/metrics", server.base))
            .call()
            .ok()
            .and_then(|r| r.into_body().read_to_string().ok())
            .unwrap_or_default();
        if text.lines().any(|l| l == "face_usage_backlog 0") {
            return;
        }
        assert!(Instant::now() < deadline, "usage still waiting after {within:?}:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `ready` holds, polling; fails with `what` after `within`.
pub fn wait_until(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not so after {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One line of the server's /metrics, `name value`, as the value.
pub fn metric(server: &Server, name: &str) -> Option<f64> {
    let text = agent().get(format!("{}/metrics", server.base)).call().ok()?.into_body().read_to_string().ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A POST whose body arrives in two parts: `begin` sends the headers and half the body (or all
/// but its last byte: `begin_all_but_last`), so the request is in flight on the server, held
/// there until `send_rest`; `answer` reads what the server answered.
#[derive(Debug)]
pub struct HalfSent {
    stream: std::net::TcpStream,
    rest: Vec<u8>,
}

/// An answer read off the socket: status, the header block, the body.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl HalfSent {
    pub fn begin(server: &Server, path: &str, content_type: &str, body: &[u8]) -> HalfSent {
        Self::send_first(server, path, content_type, body, body.len() / 2)
    }

    pub fn begin_all_but_last(server: &Server, path: &str, content_type: &str, body: &[u8]) -> HalfSent {
        Self::send_first(server, path, content_type, body, body.len() - 1)
    }

    fn send_first(server: &Server, path: &str, content_type: &str, body: &[u8], first: usize) -> HalfSent {
        use std::io::Write as _;
        let address = server.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        let head = format!(
            "POST /face/v1.0{path} HTTP/1.1\r\nHost: {address}\r\nOcp-Apim-Subscription-Key: {KEY}\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body[..first]).unwrap();
        HalfSent { stream, rest: body[first..].to_vec() }
    }

    /// Sends the rest of the body.
    pub fn send_rest(&mut self) {
        use std::io::Write as _;
        self.stream.write_all(&std::mem::take(&mut self.rest)).unwrap();
    }

    /// Reads the answer to the end (the request asked to close the connection).
    pub fn answer(mut self) -> RawAnswer {
        let mut text = String::new();
        self.stream.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        RawAnswer { status, head: head.to_owned(), body: body.to_owned() }
    }

    /// Sends the rest and reads the answer.
    pub fn finish(mut self) -> RawAnswer {
        self.send_rest();
        self.answer()
    }
}

/// `count` POSTs of `body` to `path`, all in flight at once by the server's own count (each
/// body but its last byte sent), then their last bytes one after another: the first admitted
/// is still running when the others arrive. Their answers, in order.
pub fn at_once(server: &Server, count: usize, path: &str, content_type: &str, body: &[u8]) -> Vec<RawAnswer> {
    let mut pending: Vec<HalfSent> =
        (0..count).map(|_| HalfSent::begin_all_but_last(server, path, content_type, body)).collect();
    wait_until(&format!("{count} requests in flight"), Duration::from_secs(60), || {
        metric(server, "face_requests_in_flight") == Some(count as f64)
    });
    for p in &mut pending {
        p.send_rest();
    }
    pending.into_iter().map(HalfSent::answer).collect()
}
