// SPDX-License-Identifier: Apache-2.0

package conns

// ProtocolStack is the classification of a connection, layer by layer, read
// by the kernel from the first payload bytes of each direction. Zero values
// mean "not classified": each layer is set only when the bytes were certain.
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
	AppHTTP                // HTTP/1.x whose version the first bytes did not say
	AppHTTP10
	AppHTTP11
	AppHTTP2
	AppKafka
	AppAMQP // AMQP 0-9-1
	AppRedis
	AppPostgres
	AppMySQL
	AppMongo
	AppDNS
	numApps
)

// appNames are the network.protocol.name and network.protocol.version
// values of each application protocol.
var appNames = [numApps][2]string{
	AppUnknown:  {"", ""},
	AppHTTP:     {"http", ""},
	AppHTTP10:   {"http", "1.0"},
	AppHTTP11:   {"http", "1.1"},
	AppHTTP2:    {"http", "2"},
	AppKafka:    {"kafka", ""},
	AppAMQP:     {"amqp", ""},
	AppRedis:    {"redis", ""},
	AppPostgres: {"postgresql", ""},
	AppMySQL:    {"mysql", ""},
	AppMongo:    {"mongodb", ""},
	AppDNS:      {"dns", ""},
}

// String returns the value for network.protocol.name ("" when unknown).
func (a Application) String() string {
	if a < numApps {
		return appNames[a][0]
	}
	return ""
}

// Version returns the value for network.protocol.version: HTTP's version
// where the bytes said it, "" otherwise.
func (a Application) Version() string {
	if a < numApps {
		return appNames[a][1]
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
