import Foundation
import Shared

/// The OpenID Connect broker (DigiD, eHerkenning) settings, read once at start. Each key is in
/// docs/CONFIGURATION.md with its default.
struct OIDCSettings: Sendable {
    /// The ordered assurance levels of DigiD (basis, midden, substantieel, hoog), lowest first.
    static let digidLevels = [
        "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI",
    ]

    /// `PORTAL_OIDC_ISSUER`: the broker's issuer URL; its endpoints and keys come from its discovery document.
    var issuer: String
    /// `PORTAL_OIDC_CLIENT_ID` and `PORTAL_OIDC_CLIENT_SECRET` (client_secret_basic at the token endpoint).
    var clientID: String
    var clientSecret: String
    /// `PORTAL_OIDC_AUDIENCE` (default: the client id): the audience that bearer access tokens must carry.
    var audience: String
    /// `PORTAL_OIDC_BSN_CLAIM` (default `bsn`) and `PORTAL_OIDC_KVK_CLAIM` (default `kvk`).
    var bsnClaim: String
    var kvkClaim: String
    /// `PORTAL_OIDC_SCOPES` (default `openid`).
    var scopes: String
    /// `PORTAL_OIDC_ACR_LEVELS` (default: the DigiD levels), lowest first, and `PORTAL_OIDC_MIN_ACR` (default: no
    /// minimum): a token whose `acr` is below the minimum, or not in the list, is refused.
    var acrLevels: [String]
    var minimumACR: String?
    /// Where the broker sends the resident back: `PORTAL_PUBLIC_URL` + `/auth/callback`.
    var redirectURI: String
    /// How often at most the keys are fetched again for an unknown key id (a token with a made-up key id must not
    /// make us hammer the broker).
    var keyRefreshInterval: Duration = .seconds(10)

    /// nil when `PORTAL_OIDC_ISSUER` is unset: no broker login then, and no bearer tokens.
    static func read(_ environment: EnvironmentReader, publicURL: URL) throws(ConfigurationError) -> OIDCSettings? {
        guard let issuer = environment.string("PORTAL_OIDC_ISSUER") else { return nil }
        guard let url = URL(string: issuer), let scheme = url.scheme, let host = url.host, url.query == nil else {
            throw ConfigurationError(variable: "PORTAL_OIDC_ISSUER", problem: "is not a URL like https://broker.example.nl")
        }
        let loopback = ["127.0.0.1", "localhost", "::1"].contains(host)
        guard scheme == "https" || (scheme == "http" && loopback) else {
            throw ConfigurationError(variable: "PORTAL_OIDC_ISSUER", problem: "must be an https URL (http only on loopback)")
        }
        let clientID = try environment.requiredString("PORTAL_OIDC_CLIENT_ID")
        let clientSecret = try environment.requiredString("PORTAL_OIDC_CLIENT_SECRET")
        let levels =
            environment.string("PORTAL_OIDC_ACR_LEVELS").map {
                $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            } ?? Self.digidLevels
        let minimumACR = environment.string("PORTAL_OIDC_MIN_ACR")
        if let minimumACR, !levels.contains(minimumACR) {
            throw ConfigurationError(variable: "PORTAL_OIDC_MIN_ACR", problem: "is not one of PORTAL_OIDC_ACR_LEVELS")
        }
        return OIDCSettings(
            issuer: issuer,
            clientID: clientID,
            clientSecret: clientSecret,
            audience: environment.string("PORTAL_OIDC_AUDIENCE", default: clientID),
            bsnClaim: environment.string("PORTAL_OIDC_BSN_CLAIM", default: "bsn"),
            kvkClaim: environment.string("PORTAL_OIDC_KVK_CLAIM", default: "kvk"),
            scopes: environment.string("PORTAL_OIDC_SCOPES", default: "openid"),
            acrLevels: levels,
            minimumACR: minimumACR,
            redirectURI: publicURL.appendingPathComponent("auth/callback").absoluteString
        )
    }
}
