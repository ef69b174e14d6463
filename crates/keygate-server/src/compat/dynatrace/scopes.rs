//! Dynatrace's scope names, added to the catalogue when the surface is served.

use keygate_core::ScopeCatalog;

/// Dynatrace's scope names, registered when this surface is on. `apiTokens.read` and
/// `apiTokens.write` are honoured as `tokens:read` and `tokens:write` by the core.
pub const SCOPES: &[(&str, &str)] = &[
    (
        "apiTokens.read",
        "Dynatrace: read API tokens (as tokens:read)",
    ),
    (
        "apiTokens.write",
        "Dynatrace: write API tokens (as tokens:write)",
    ),
    (
        "DataExport",
        "Dynatrace: access problem and event feed, metrics, and topology",
    ),
    ("ReadConfig", "Dynatrace: read configuration"),
    ("WriteConfig", "Dynatrace: write configuration"),
    ("metrics.read", "Dynatrace: read metrics"),
    ("metrics.write", "Dynatrace: write metrics"),
    ("metrics.ingest", "Dynatrace: ingest metrics"),
    ("entities.read", "Dynatrace: read entities"),
    ("entities.write", "Dynatrace: write entities"),
    ("logs.read", "Dynatrace: read logs"),
    ("logs.ingest", "Dynatrace: ingest logs"),
    ("events.read", "Dynatrace: read events"),
    ("events.ingest", "Dynatrace: ingest events"),
    ("problems.read", "Dynatrace: read problems"),
    ("problems.write", "Dynatrace: write problems"),
    ("settings.read", "Dynatrace: read settings"),
    ("settings.write", "Dynatrace: write settings"),
    ("slo.read", "Dynatrace: read SLOs"),
    ("slo.write", "Dynatrace: write SLOs"),
    (
        "ReadSyntheticData",
        "Dynatrace: read synthetic monitors, locations, and nodes",
    ),
    (
        "InstallerDownload",
        "Dynatrace: PaaS integration, installer download",
    ),
    ("DataPrivacy", "Dynatrace: change data privacy settings"),
    (
        "ExternalSyntheticIntegration",
        "Dynatrace: create and read synthetic monitors, locations, and nodes",
    ),
    (
        "credentialVault.read",
        "Dynatrace: read credential vault entries",
    ),
    (
        "credentialVault.write",
        "Dynatrace: write credential vault entries",
    ),
    ("PluginUpload", "Dynatrace: upload extensions"),
    ("SupportAlert", "Dynatrace: PaaS integration, support alert"),
    ("LogExport", "Dynatrace: read log content"),
    ("DTAQLAccess", "Dynatrace: user sessions"),
    (
        "UserSessionAnonymization",
        "Dynatrace: anonymize user session data",
    ),
    ("CaptureRequestData", "Dynatrace: capture request data"),
    (
        "DataImport",
        "Dynatrace: data ingest, e.g. metrics and events",
    ),
    (
        "TenantTokenManagement",
        "Dynatrace: tenant token management",
    ),
    (
        "ActiveGateCertManagement",
        "Dynatrace: ActiveGate certificate management",
    ),
    (
        "RestRequestForwarding",
        "Dynatrace: fetch data from a remote environment",
    ),
    ("auditLogs.read", "Dynatrace: read audit logs"),
    ("networkZones.read", "Dynatrace: read network zones"),
    ("networkZones.write", "Dynatrace: write network zones"),
    ("activeGates.read", "Dynatrace: read ActiveGates"),
    ("activeGates.write", "Dynatrace: write ActiveGates"),
    ("extensions.read", "Dynatrace: read extensions"),
    ("extensions.write", "Dynatrace: write extensions"),
    (
        "extensionConfigurations.read",
        "Dynatrace: read extension monitoring configurations",
    ),
    (
        "extensionConfigurations.write",
        "Dynatrace: write extension monitoring configurations",
    ),
    (
        "extensionEnvironment.read",
        "Dynatrace: read extension environment configurations",
    ),
    (
        "extensionEnvironment.write",
        "Dynatrace: write extension environment configurations",
    ),
    ("securityProblems.read", "Dynatrace: read security problems"),
    (
        "securityProblems.write",
        "Dynatrace: write security problems",
    ),
    (
        "syntheticLocations.read",
        "Dynatrace: read synthetic locations",
    ),
    (
        "syntheticLocations.write",
        "Dynatrace: write synthetic locations",
    ),
    (
        "tenantTokenRotation.write",
        "Dynatrace: tenant token rotation",
    ),
    ("releases.read", "Dynatrace: read releases"),
];

pub fn register_scopes(catalog: &mut ScopeCatalog) {
    for (name, description) in SCOPES {
        catalog
            .add_to_group("dynatrace", name, description)
            .expect("Dynatrace's scope names are valid scope names");
    }
}
