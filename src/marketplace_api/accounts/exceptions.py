from marketplace_api.errors import Conflict, Forbidden, Unauthorized


class EmailAlreadyRegistered(Conflict):
    code = "email_already_registered"
    title = "E-mail already registered"


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    title = "Incorrect e-mail or password"


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    title = "Refresh token is invalid, expired or revoked"


class InvalidAccessToken(Unauthorized):
    code = "invalid_token"
    title = "Access token is invalid or expired"


class RoleNotAllowed(Forbidden):
    code = "role_not_allowed"
    title = "Your role cannot use this endpoint"


class CsrfCheckFailed(Forbidden):
    code = "csrf_check_failed"
    title = "Cross-site request refused"
