// SPDX-License-Identifier: Apache-2.0

package conns

// ProtocolStack is the classification of a connection, layer by layer. Zero
// values mean "not classified".
type ProtocolStack struct {
	API         API
	Application Application
	Encryption  Encryption
}

// API is the RPC layer above the application protocol.
type API uint8

const (
	APIUnknown API = iota
	APIGRPC
)

// String returns the semantic-convention value for rpc.system ("" when unknown).
func (a API) String() string {
	if a == APIGRPC {
		return "grpc"
	}
	return ""
}

// Application is the application-layer protocol.
type Application uint8

const (
	AppUnknown Application = iota
	AppHTTP
	AppHTTP2
	AppKafka
	AppAMQP
	AppRedis
	AppPostgres
	AppMySQL
	AppMongo
	AppDNS
)

var appNames = [...]string{
	AppUnknown:  "",
	AppHTTP:     "http",
	AppHTTP2:    "http2",
	AppKafka:    "kafka",
	AppAMQP:     "amqp",
	AppRedis:    "redis",
	AppPostgres: "postgresql",
	AppMySQL:    "mysql",
	AppMongo:    "mongodb",
	AppDNS:      "dns",
}

// String returns the value for network.protocol.name ("" when unknown).
func (a Application) String() string {
	if int(a) < len(appNames) {
		return appNames[a]
	}
	return ""
}

// Encryption is the encryption layer.
type Encryption uint8

const (
	EncryptionNone Encryption = iota
	EncryptionTLS10
	EncryptionTLS11
	EncryptionTLS12
	EncryptionTLS13
)

var tlsVersions = [...]string{"", "1.0", "1.1", "1.2", "1.3"}

// TLSVersion returns the value for tls.protocol.version ("" when not TLS).
func (e Encryption) TLSVersion() string {
	if int(e) < len(tlsVersions) {
		return tlsVersions[e]
	}
	return ""
}
