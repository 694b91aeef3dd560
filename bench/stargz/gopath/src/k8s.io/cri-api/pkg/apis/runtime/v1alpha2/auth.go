// Package v1alpha2 is hoist's stand-in for the one type stargz-snapshotter 0.12 uses from
// k8s.io/cri-api (not packaged in Debian): AuthConfig, the registry credentials a CRI
// PullImageRequest carries. Only stargz's service/resolver refers to it, to parse credentials
// proxied from the CRI image service; the bench's daemon never enables that keychain, so this
// is a plain struct with the upstream field names and nothing else.
package v1alpha2

// AuthConfig holds registry credentials as the CRI API passes them.
type AuthConfig struct {
	Username      string
	Password      string
	Auth          string // base64 of "user:password"
	ServerAddress string // when set, the credentials apply only to this host
	IdentityToken string
	RegistryToken string
}
