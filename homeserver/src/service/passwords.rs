//! Password hashing: argon2id for new hashes; bcrypt hashes (as Synapse stores them) still verify.

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};

/// Hashes a password with argon2id (PHC string). CPU-heavy: call from a blocking thread.
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

/// Checks a password against a stored hash of either kind. CPU-heavy: call from a blocking thread.
pub fn verify(password: &str, stored: &str) -> bool {
    if stored.starts_with("$2") {
        // Synapse appends its `password_config.pepper` (empty by default) before bcrypt.
        return bcrypt::verify(password, stored).unwrap_or(false);
    }
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Password work runs on a few dedicated threads rather than tokio's blocking pool: each argon2
/// call allocates 19 MiB, and spread over many short-lived threads those allocations stay resident
/// (one malloc arena per thread). Here at most one block per worker is ever live.
fn pool() -> &'static std::sync::mpsc::SyncSender<Box<dyn FnOnce() + Send>> {
    static POOL: std::sync::OnceLock<std::sync::mpsc::SyncSender<Box<dyn FnOnce() + Send>>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Box<dyn FnOnce() + Send>>(1024);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        for i in 0..workers {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().expect("password pool poisoned").recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("cannot start a password hashing thread");
        }
        tx
    })
}

async fn on_pool<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Box<dyn FnOnce() + Send> = Box::new(move || {
        let _ = tx.send(f());
    });
    let sender = pool().clone();
    // The queue is bounded; wait for room off the async threads.
    tokio::task::spawn_blocking(move || sender.send(job))
        .await
        .expect("send does not panic")
        .expect("password pool is running");
    rx.await.expect("password jobs do not panic")
}

/// [`hash`] on the password threads.
pub async fn hash_async(password: String) -> String {
    on_pool(move || hash(&password)).await
}

/// [`verify`] on the password threads.
pub async fn verify_async(password: String, stored: String) -> bool {
    on_pool(move || verify(&password, &stored)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify_and_reject_wrong_passwords() {
        let h = hash("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong", &h));
    }

    #[test]
    fn synapse_bcrypt_hashes_still_verify() {
        let h = bcrypt::hash("hunter2", 4).unwrap();
        assert!(verify("hunter2", &h));
        assert!(!verify("hunter3", &h));
        assert!(!verify("x", "not a hash"));
    }
}
