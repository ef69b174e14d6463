//! A tiny HTTP server that answers every request 200 and remembers what it was sent: the API
//! behind a gateway, to see which headers reach it, or keygate's place in a gateway's
//! configuration, to see what the gateway asks.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body, as text (lossily, should it not be UTF-8).
    pub body: String,
}

impl Seen {
    /// Every value of a header (name in any case).
    pub fn all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of a header; a header sent twice fails the test.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(
            all.len() <= 1,
            "{name} arrived {} times: {self:?}",
            all.len()
        );
        all.first().copied()
    }
}

pub struct Recorder {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    /// Listening on an ephemeral port until the test process ends.
    pub fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    if let Some(s) = read_request(&stream) {
                        log.lock().unwrap().push(s);
                    }
                    let mut stream = stream;
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream",
                    );
                });
            }
        });
        Recorder { addr, seen }
    }

    /// Everything received since the last call.
    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut self.seen.lock().unwrap())
    }

    /// The one request received since the last call; none or several fail the test.
    pub fn one(&self) -> Seen {
        let mut seen = self.take();
        assert_eq!(seen.len(), 1, "expected one request: {seen:?}");
        seen.pop().unwrap()
    }
}

/// The request head and its body, read whole, so that the sender is not cut off midway.
fn read_request(stream: &TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let mut seen = Seen {
        method,
        target,
        headers,
        body: String::new(),
    };
    if let Some(n) = seen
        .header("content-length")
        .and_then(|n| n.parse::<u64>().ok())
    {
        let mut body = Vec::new();
        reader.by_ref().take(n).read_to_end(&mut body).ok()?;
        seen.body = String::from_utf8_lossy(&body).into_owned();
    }
    Some(seen)
}
