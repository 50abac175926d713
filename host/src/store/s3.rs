//! An S3 bucket (or any S3-compatible server) as a store, through `aws-sdk-s3`.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;

use super::{Key, StoreError};

/// How to reach S3 beyond what the standard AWS environment says.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Endpoint override, e.g. an S3-compatible server or a VPC endpoint. The standard
    /// `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` variables work too.
    pub endpoint: Option<String>,
    /// Address buckets as `endpoint/bucket/key` instead of `bucket.endpoint/key`, as most
    /// S3-compatible servers need.
    pub path_style: bool,
}

/// Objects in a bucket, below an optional prefix.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: Option<Key>,
}

/// Region used for request signing when the environment names none.
const FALLBACK_REGION: &str = "us-east-1";

impl S3Store {
    /// A client configured from the AWS environment (credentials, region) and `options`.
    pub async fn from_env(bucket: String, prefix: Option<Key>, options: &S3Options) -> Self {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        let mut config =
            aws_sdk_s3::config::Builder::from(&sdk).force_path_style(options.path_style);
        if sdk.region().is_none() {
            config = config.region(aws_sdk_s3::config::Region::new(FALLBACK_REGION));
        }
        if let Some(endpoint) = &options.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Self::new(Client::from_conf(config.build()), bucket, prefix)
    }

    /// A store over an existing client (built once per process, e.g. per Lambda container).
    pub fn new(client: Client, bucket: String, prefix: Option<Key>) -> Self {
        Self { client, bucket, prefix }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `s3://bucket[/prefix]`
    pub fn describe(&self) -> String {
        match &self.prefix {
            Some(prefix) => format!("s3://{}/{prefix}", self.bucket),
            None => format!("s3://{}", self.bucket),
        }
    }

    /// The store key of a full object key, if it lies below this store's prefix.
    pub fn key_within_prefix(&self, object_key: &str) -> Option<Result<Key, super::StoreError>> {
        let relative = match &self.prefix {
            Some(prefix) => object_key.strip_prefix(prefix.as_str())?.strip_prefix('/')?,
            None => object_key,
        };
        Some(Key::new(relative).map_err(Into::into))
    }

    /// The full object key of `key` in the bucket.
    pub fn object_key(&self, key: &Key) -> String {
        match &self.prefix {
            Some(prefix) => prefix.join(key).as_str().to_owned(),
            None => key.as_str().to_owned(),
        }
    }

    pub fn location(&self, key: &Key) -> String {
        format!("s3://{}/{}", self.bucket, self.object_key(key))
    }

    fn error<E>(
        &self,
        action: &'static str,
        key: &Key,
        error: SdkError<E, HttpResponse>,
    ) -> StoreError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let transient = match &error {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(e) => {
                let status = e.raw().status().as_u16();
                status >= 500 || status == 429
            }
            _ => false,
        };
        StoreError::Io {
            action,
            location: self.location(key),
            message: DisplayErrorContext(&error).to_string(),
            transient,
        }
    }

    pub async fn put(
        &self,
        key: &Key,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.error("write", key, e))?;
        Ok(())
    }

    pub async fn get(&self, key: &Key) -> Result<Vec<u8>, StoreError> {
        let object = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .await
        {
            Ok(object) => object,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Err(StoreError::NotFound { location: self.location(key) });
            }
            Err(e) => return Err(self.error("read", key, e)),
        };
        let body = object.body.collect().await.map_err(|e| StoreError::Io {
            action: "read",
            location: self.location(key),
            message: e.to_string(),
            transient: true,
        })?;
        Ok(body.into_bytes().to_vec())
    }

    pub async fn list(&self, prefix: &Key) -> Result<Vec<Key>, StoreError> {
        let full = format!("{}/", self.object_key(prefix));
        let strip = match &self.prefix {
            Some(p) => format!("{p}/"),
            None => String::new(),
        };
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("list", prefix, e))?;
            for object in page.contents() {
                if let Some(key) =
                    object.key().and_then(|k| k.strip_prefix(&strip)).and_then(|k| Key::new(k).ok())
                {
                    keys.push(key);
                }
            }
        }
        keys.sort();
        Ok(keys)
    }
}
