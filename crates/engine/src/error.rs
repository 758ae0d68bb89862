//! Engine errors, one variant per AWS error code. The message is the exact text Kinesis sends.

/// An error the engine answers a request with. `code()` is the AWS `__type`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    ResourceInUse(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    ProvisionedThroughputExceeded(String),
    #[error("{0}")]
    ExpiredIterator(String),
    #[error("{0}")]
    ExpiredNextToken(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    KmsNotFound(String),
    #[error("{0}")]
    KmsDisabled(String),
    /// A fault of ours (disk full, I/O error, a corrupt frame): HTTP 500.
    #[error("{0}")]
    InternalFailure(String),
}

impl Error {
    /// The AWS error code sent as `__type`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::ResourceNotFound(_) => "ResourceNotFoundException",
            Error::ResourceInUse(_) => "ResourceInUseException",
            Error::InvalidArgument(_) => "InvalidArgumentException",
            Error::Validation(_) => "ValidationException",
            Error::LimitExceeded(_) => "LimitExceededException",
            Error::ProvisionedThroughputExceeded(_) => "ProvisionedThroughputExceededException",
            Error::ExpiredIterator(_) => "ExpiredIteratorException",
            Error::ExpiredNextToken(_) => "ExpiredNextTokenException",
            Error::AccessDenied(_) => "AccessDeniedException",
            Error::KmsNotFound(_) => "KMSNotFoundException",
            Error::KmsDisabled(_) => "KMSDisabledException",
            Error::InternalFailure(_) => "InternalFailureException",
        }
    }

    /// The message text.
    pub fn message(&self) -> &str {
        match self {
            Error::ResourceNotFound(m)
            | Error::ResourceInUse(m)
            | Error::InvalidArgument(m)
            | Error::Validation(m)
            | Error::LimitExceeded(m)
            | Error::ProvisionedThroughputExceeded(m)
            | Error::ExpiredIterator(m)
            | Error::ExpiredNextToken(m)
            | Error::AccessDenied(m)
            | Error::KmsNotFound(m)
            | Error::KmsDisabled(m)
            | Error::InternalFailure(m) => m,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
