// The credential loader's refusals: every unusable combination of flags or file is an
// error status naming the file or what is missing, never a crash or a silent plaintext.
#include "common/grpc/tls_credentials.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <utility>

#include "common/text_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/scoped_temp_dir.h"

namespace ringserve {
namespace {

using ::testing::HasSubstr;

// Syntactically PEM; the loader checks the framing, gRPC checks the contents when it
// listens or connects.
constexpr char kCertificate[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
constexpr char kKey[] = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

// Positional, since -Wmissing-field-initializers rejects partial designated initializers.
ServerTlsFiles Server(std::string cert, std::string key, std::string client_ca = "") {
  return {std::move(cert), std::move(key), std::move(client_ca)};
}
ClientTlsFiles Client(std::string ca, std::string cert = "", std::string key = "") {
  return {std::move(ca), std::move(cert), std::move(key)};
}

class TlsCredentialsTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& contents) {
    const std::string path = dir_.File(name);
    std::ofstream(path) << contents;
    return path;
  }
  testing::ScopedTempDir dir_;
};

TEST_F(TlsCredentialsTest, NothingSetIsPlaintext) {
  EXPECT_TRUE(LoadServerCredentials({}).ok());
  EXPECT_TRUE(LoadChannelCredentials({}).ok());
  EXPECT_FALSE(ServerTlsFiles{}.enabled());
  EXPECT_FALSE(ClientTlsFiles{}.enabled());
}

TEST_F(TlsCredentialsTest, WellFormedFilesLoad) {
  const std::string cert = Write("cert.pem", kCertificate);
  const std::string key = Write("key.pem", kKey);
  auto server = LoadServerCredentials(Server(cert, key, cert));
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_NE(*server, nullptr);
  auto client = LoadChannelCredentials(Client(cert, cert, key));
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_NE(*client, nullptr);
}

TEST_F(TlsCredentialsTest, AMissingFileIsNotFoundAndNamesIt) {
  const std::string cert = Write("cert.pem", kCertificate);
  const std::string missing = "/nonexistent/ringserve/key.pem";
  auto server = LoadServerCredentials(Server(cert, missing));
  EXPECT_EQ(server.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(server.status().message(), HasSubstr(missing));
  EXPECT_THAT(server.status().message(), HasSubstr("TLS key"));
  auto client = LoadChannelCredentials(Client(missing));
  EXPECT_EQ(client.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(client.status().message(), HasSubstr("TLS CA"));
}

TEST_F(TlsCredentialsTest, HalfAPairOrAClientCaWithoutACertificateIsRefused) {
  const std::string cert = Write("cert.pem", kCertificate);
  const std::string key = Write("key.pem", kKey);
  for (const ServerTlsFiles& files : {Server(cert, ""), Server("", key), Server("", "", cert)}) {
    EXPECT_EQ(LoadServerCredentials(files).status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_THAT(LoadServerCredentials(Server("", "", cert)).status().message(),
              HasSubstr("client CA"));
  EXPECT_EQ(LoadChannelCredentials(Client(cert, cert)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TlsCredentialsTest, AFileOfTheWrongKindIsRefusedByName) {
  const std::string cert = Write("cert.pem", kCertificate);
  const std::string key = Write("key.pem", kKey);
  const std::string garbage = Write("garbage.pem", "not pem at all\n");
  const std::string empty = Write("empty.pem", "");
  // Certificate and key swapped.
  auto swapped = LoadServerCredentials(Server(key, cert));
  EXPECT_EQ(swapped.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(swapped.status().message(), HasSubstr("holds no PEM certificate"));
  auto not_pem = LoadChannelCredentials(Client(garbage));
  EXPECT_EQ(not_pem.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(not_pem.status().message(), HasSubstr(garbage));
  auto nothing = LoadServerCredentials(Server(cert, empty));
  EXPECT_EQ(nothing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(nothing.status().message(), HasSubstr("is empty"));
  auto directory = LoadChannelCredentials(Client(dir_.path()));
  EXPECT_EQ(directory.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(directory.status().message(), HasSubstr("is a directory"));
}

TEST_F(TlsCredentialsTest, AnUnreadableFileIsPermissionDenied) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads every file";
  const std::string key = Write("secret.pem", kKey);
  ASSERT_EQ(chmod(key.c_str(), 0), 0);
  auto result = ReadTextFile(key, "TLS key");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(result.status().message(), HasSubstr(key));
}

TEST_F(TlsCredentialsTest, AnOversizedFileIsRefused) {
  const std::string big = Write("big.pem", std::string(2048, 'x'));
  EXPECT_EQ(ReadTextFile(big, "TLS CA", 1024).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ReadTextFile(big, "TLS CA", 4096).ok());
}

}  // namespace
}  // namespace ringserve
