//! A registry that lies: a small HTTP/1.1 server on 127.0.0.1 that serves
//! whatever a test hands it, byte for byte.
//!
//! `docker-registry` (the real server the image suites use) checks what is
//! pushed to it: it will not store a manifest whose digests are not digests,
//! nor serve a blob that does not match its digest, nor a body that never
//! ends. A hostile registry does all of these. Each route here is a path and
//! a response the test wrote: status, headers (a lying `Content-Length` or
//! `Docker-Content-Digest` included) and a body that may be endless. Every
//! connection gets one response and is closed; the server stops when
//! dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

/// What a route answers.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// Answer only requests that carry this Authorization header; others
    /// get 401 with `challenge` as WWW-Authenticate.
    pub requires: Option<(String, String)>,
}

/// A response's body.
#[derive(Debug, Clone)]
pub enum Body {
    Bytes(Vec<u8>),
    /// This byte, forever (until the client hangs up).
    Endless(u8),
}

impl Response {
    /// 200 with `body`, its Content-Length, and `content_type`.
    pub fn ok(body: impl Into<Vec<u8>>, content_type: &str) -> Response {
        Response {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Body::Bytes(body.into()),
            requires: None,
        }
    }

    /// `status`, an empty body.
    pub fn status(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
            requires: None,
        }
    }

    /// 200 with a body that never ends, and no Content-Length.
    pub fn endless(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Endless(b'{'),
            requires: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Only for requests with `Authorization: {authorization}`; others get
    /// 401 and `WWW-Authenticate: {challenge}`.
    pub fn requiring(mut self, authorization: &str, challenge: &str) -> Response {
        self.requires = Some((authorization.into(), challenge.into()));
        self
    }
}

type Routes = Arc<Mutex<HashMap<String, Response>>>;

/// The server.
pub struct Hostile {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    routes: Routes,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hostile {
    pub fn start() -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port on loopback");
        let addr = listener.local_addr().unwrap().to_string();
        let routes: Routes = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (routes, requests, stop) = (routes.clone(), requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (routes, requests) = (routes.clone(), requests.clone());
                    std::thread::spawn(move || serve(stream, &routes, &requests));
                }
            })
        };
        Hostile {
            addr,
            routes,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT/NAME`.
    pub fn name(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }

    /// Answer GET `path` with `response`.
    pub fn route(&self, path: &str, response: Response) {
        self.routes.lock().unwrap().insert(path.into(), response);
    }

    /// Serve `manifest` (a JSON document, its media type read from it) for
    /// `repo:tag`, by tag and by its digest, and each blob by its digest.
    /// The digests in the manifest are whatever the test wrote.
    pub fn image(
        &self,
        repo: &str,
        tag: &str,
        manifest: &serde_json::Value,
        blobs: &[(&str, Vec<u8>)],
    ) {
        let bytes = serde_json::to_vec(manifest).unwrap();
        let media = manifest["mediaType"]
            .as_str()
            .unwrap_or("application/vnd.oci.image.manifest.v1+json")
            .to_owned();
        let digest = sha256(&bytes);
        for reference in [tag, &digest] {
            self.route(
                &format!("/v2/{repo}/manifests/{reference}"),
                Response::ok(bytes.clone(), &media).header("Docker-Content-Digest", &digest),
            );
        }
        for (digest, blob) in blobs {
            self.route(
                &format!("/v2/{repo}/blobs/{digest}"),
                Response::ok(blob.clone(), "application/octet-stream"),
            );
        }
    }

    /// The paths asked for so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(&self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An image's manifest as a registry would serve it: `config` and `layers`
/// (gzip blobs) described by their real digests and sizes. A test then
/// changes what it wants to lie about.
pub fn manifest(config: &[u8], layers: &[&[u8]]) -> serde_json::Value {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": sha256(l), "size": l.len(),
            })
        })
        .collect();
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config), "size": config.len(),
        },
        "layers": layers,
    })
}

/// A minimal image config running `cmd`.
pub fn config(cmd: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap()
}

/// `sha256:` and the hex of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn serve(stream: TcpStream, routes: &Routes, requests: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut authorization = None;
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => return,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("authorization")
                {
                    authorization = Some(value.trim().to_owned());
                }
            }
        }
    }
    requests.lock().unwrap().push(path.clone());
    // The route is the path without its query.
    let route = path.split('?').next().unwrap_or("").to_owned();
    let response = routes.lock().unwrap().get(&route).cloned();
    let response = match response {
        Some(r) => match &r.requires {
            Some((wanted, challenge)) if authorization.as_deref() != Some(wanted.as_str()) => {
                Response::status(401).header("WWW-Authenticate", challenge)
            }
            _ => r,
        },
        None => Response::status(404),
    };
    let _ = respond(stream, &response);
}

fn respond(mut stream: TcpStream, response: &Response) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", response.status);
    let has_length = response
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let (Body::Bytes(bytes), false) = (&response.body, has_length) {
        head.push_str(&format!("Content-Length: {}\r\n", bytes.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    match &response.body {
        Body::Bytes(bytes) => stream.write_all(bytes),
        Body::Endless(byte) => {
            let chunk = vec![*byte; 64 << 10];
            // Until the client hangs up (or an hour of it, at most).
            for _ in 0..(1 << 20) {
                stream.write_all(&chunk)?;
            }
            Ok(())
        }
    }
}
