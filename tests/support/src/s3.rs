//! A real S3-compatible server on loopback (s3s-fs over HTTP), started by the test itself.
//! Objects land as plain files `<root>/<bucket>/<key>`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

pub const ACCESS_KEY: &str = "crypto-etl-test";
pub const SECRET_KEY: &str = "crypto-etl-test-secret";
pub const REGION: &str = "us-east-1";

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct S3Server {
    pub addr: SocketAddr,
    pub root: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl S3Server {
    /// Serves `root` as S3 on 127.0.0.1 (a free port), with `buckets` created.
    pub async fn start(root: &Path, buckets: &[&str]) -> Self {
        for bucket in buckets {
            std::fs::create_dir_all(root.join(bucket)).expect("create bucket folder");
        }
        let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs over the test folder");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Self { addr, root: root.to_owned(), task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The environment a `crypto-etl` process needs to use this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("CRYPTO_ETL_S3_ENDPOINT", self.endpoint()),
            ("CRYPTO_ETL_S3_PATH_STYLE", "true".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
