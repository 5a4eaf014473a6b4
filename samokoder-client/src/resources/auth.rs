//! `/v1/auth/*`: registration, login, refresh, logout, the current user, password change.

use samokoder_core::api::MessageResponse;
use samokoder_core::api::auth::{
    AuthResponse, ChangePasswordRequest, LoginRequest, LogoutAllResponse, RefreshRequest,
    RegisterRequest, UserResponse,
};

use crate::operations as ops;
use crate::{Client, Error};

/// Session operations; from [`Client::auth`].
#[derive(Debug, Clone, Copy)]
pub struct Auth<'a> {
    pub(crate) client: &'a Client,
}

impl Auth<'_> {
    /// `POST /v1/auth/register`: creates an account and starts its session.
    pub async fn register(&self, email: &str, password: &str) -> Result<AuthResponse, Error> {
        let response: AuthResponse = self
            .client
            .call(&ops::REGISTER, &[])
            .json(&RegisterRequest {
                email: email.to_owned(),
                password: password.to_owned(),
            })
            .send_json()
            .await?;
        self.client.start_session(&response);
        Ok(response)
    }

    /// `POST /v1/auth/login`: starts a session.
    ///
    /// ```no_run
    /// # async fn demo(client: samokoder_client::Client) -> Result<(), samokoder_client::Error> {
    /// match client.auth().login("ada@example.com", "wrong").await {
    ///     Err(error) if error.code() == Some("invalid_credentials") => println!("try again"),
    ///     other => println!("{:?}", other.map(|session| session.email)),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn login(&self, email: &str, password: &str) -> Result<AuthResponse, Error> {
        let response: AuthResponse = self
            .client
            .call(&ops::LOGIN, &[])
            .json(&LoginRequest {
                email: email.to_owned(),
                password: password.to_owned(),
            })
            .send_json()
            .await?;
        self.client.start_session(&response);
        Ok(response)
    }

    /// `POST /v1/auth/refresh`: exchanges the refresh token for a new pair now. The client
    /// also does this by itself when a call answers 401; calling it concurrently with such a
    /// call is safe (refreshes take turns, and a refresh the other one already made is not
    /// repeated with the spent token).
    pub async fn refresh(&self) -> Result<AuthResponse, Error> {
        let session = &self.client.inner.session;
        let _turn = session.refresh_lock.lock().await;
        let snapshot = session.snapshot();
        let token = snapshot.refresh_token.ok_or(Error::NotLoggedIn)?;
        let result = self
            .client
            .exchange_refresh_token(token, snapshot.generation)
            .await;
        if let Err(error) = &result
            && error.is_unauthorized()
        {
            session.set_if(snapshot.generation, None);
        }
        result
    }

    /// `POST /v1/auth/logout`: ends this session on the server (its access token is revoked,
    /// its refresh token stops working) and forgets it here. Without a session it only asks
    /// the server to clear cookies. When the server cannot be reached the session is kept, so
    /// the logout can be tried again.
    pub async fn logout(&self) -> Result<MessageResponse, Error> {
        let token = self.client.inner.session.snapshot().refresh_token;
        let response = self
            .client
            .call(&ops::LOGOUT, &[])
            .json(&RefreshRequest {
                refresh_token: token,
            })
            .send_json()
            .await?;
        self.client.forget_session();
        Ok(response)
    }

    /// `POST /v1/auth/logout-all`: ends every session of the user, this one included.
    pub async fn logout_all(&self) -> Result<LogoutAllResponse, Error> {
        let response = self.client.call(&ops::LOGOUT_ALL, &[]).send_json().await?;
        self.client.forget_session();
        Ok(response)
    }

    /// `GET /v1/auth/me`: the logged-in user.
    pub async fn me(&self) -> Result<UserResponse, Error> {
        self.client.call(&ops::ME, &[]).send_json().await
    }

    /// `POST /v1/auth/change-password`: changes the password, which ends every other session,
    /// and continues with the new session the server answers with.
    pub async fn change_password(
        &self,
        current_password: &str,
        new_password: &str,
    ) -> Result<AuthResponse, Error> {
        let response: AuthResponse = self
            .client
            .call(&ops::CHANGE_PASSWORD, &[])
            .json(&ChangePasswordRequest {
                current_password: current_password.to_owned(),
                new_password: new_password.to_owned(),
            })
            .send_json()
            .await?;
        self.client.start_session(&response);
        Ok(response)
    }
}
