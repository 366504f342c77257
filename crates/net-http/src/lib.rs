//! Blocking HTTP client on ureq: coming in the net-http issue.
