package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/**
 * A throw-away PKI made at test time with the openssl command line tool (nothing is checked in): root and
 * intermediate CAs, server certificates with chosen subject alternative names, client certificates, keys as
 * EC P-256 or RSA 2048, in PKCS#8 or the traditional (SEC1 / PKCS#1) PEM form. Everything lives in one temporary
 * directory, removed by {@link #close()}.
 *
 * <p>The openssl configuration is written here, so the result does not depend on the system's openssl.cnf. The
 * extensions are those strict verifiers (webpki/rustls, OpenSSL, the JDK) expect: CAs with critical
 * basicConstraints CA:TRUE and keyCertSign, leaves with CA:FALSE, digitalSignature, the right extended key usage
 * and (servers) the names in the subjectAltName only: the CN is never a host name verifiers should look at.
 */
public final class TestPki implements AutoCloseable {

    public static final String OPENSSL = System.getProperty("it.openssl", "/usr/bin/openssl");

    /** Key algorithm of a certificate. */
    public enum KeyType {
        EC_P256, RSA_2048,
        /** Only for negative tests: OpenSSL (Mosquitto) handles it, ring (the appender's rustls provider) cannot sign. */
        EC_P521
    }

    private static final SecureRandom RANDOM = new SecureRandom();

    private final Path dir;
    private final Path opensslConf;
    private final AtomicInteger seq = new AtomicInteger();

    private TestPki(Path dir) throws IOException {
        this.dir = dir;
        this.opensslConf = dir.resolve("openssl.cnf");
        Files.write(opensslConf, List.of(
                "[req]",
                "distinguished_name = dn",
                "prompt = no",
                "[dn]",
                "CN = placeholder",
                "[v3_ca]",
                "basicConstraints = critical, CA:TRUE",
                "keyUsage = critical, keyCertSign, cRLSign",
                "subjectKeyIdentifier = hash",
                "authorityKeyIdentifier = keyid:always"), StandardCharsets.UTF_8);
    }

    /** A new, empty PKI in its own temporary directory. */
    public static TestPki create() {
        try {
            return new TestPki(Files.createTempDirectory("kaa-mqtt-it-pki-"));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public Path dir() {
        return dir;
    }

    /** A self-signed root CA. */
    public Ca rootCa(String commonName) {
        return rootCa(commonName, KeyType.EC_P256);
    }

    public Ca rootCa(String commonName, KeyType type) {
        String base = name(commonName);
        Path key = newKey(base, type);
        Path cert = dir.resolve(base + ".crt");
        openssl("req", "-x509", "-new", "-config", opensslConf.toString(), "-extensions", "v3_ca", "-key",
                key.toString(), "-subj", "/O=kaa-mqtt-it/CN=" + commonName, "-days", "3", "-sha256",
                "-set_serial", serial(), "-out", cert.toString());
        return new Ca(commonName, cert, key, type, null);
    }

    /** A certificate with its key, and the chain up to (not including) the root. */
    public final class Issued {
        public final String commonName;
        public final KeyType keyType;
        /** The certificate alone (PEM). */
        public final Path cert;
        /** The certificate followed by the intermediate CAs that issued it (PEM), as a server or client sends it. */
        public final Path chain;
        /** The private key, PKCS#8 PEM ("BEGIN PRIVATE KEY"). */
        public final Path key;
        /** The issuer. */
        public final Ca issuer;

        Issued(String commonName, KeyType keyType, Path cert, Path chain, Path key, Ca issuer) {
            this.commonName = commonName;
            this.keyType = keyType;
            this.cert = cert;
            this.chain = chain;
            this.key = key;
            this.issuer = issuer;
        }

        public String certPem() {
            return read(cert);
        }

        public String chainPem() {
            return read(chain);
        }

        /** PKCS#8 PEM ("BEGIN PRIVATE KEY"). */
        public String keyPem() {
            return read(key);
        }

        /** The same key in the traditional form: "BEGIN EC PRIVATE KEY" (SEC1) or "BEGIN RSA PRIVATE KEY" (PKCS#1). */
        public String traditionalKeyPem() {
            Path out = dir.resolve(key.getFileName() + ".traditional.pem");
            if (!Files.exists(out)) {
                openssl("pkey", "-in", key.toString(), "-traditional", "-out", out.toString());
            }
            return read(out);
        }

        /** The same key encrypted with a passphrase: PKCS#8 ("BEGIN ENCRYPTED PRIVATE KEY"), or traditional. */
        public String encryptedKeyPem(boolean traditional) {
            Path out = dir.resolve(key.getFileName() + (traditional ? ".traditional" : "") + ".encrypted.pem");
            if (!Files.exists(out)) {
                List<String> args = new ArrayList<>(List.of("pkey", "-in", key.toString(), "-aes256", "-passout",
                        "pass:secret", "-out", out.toString()));
                if (traditional) {
                    args.add("-traditional");
                }
                openssl(args.toArray(new String[0]));
            }
            return read(out);
        }

        public X509Certificate x509() {
            return certificates(certPem()).get(0);
        }

        /** A KeyStore (PKCS12, password {@link #STORE_PASSWORD}) holding this key and chain, for a JSSE server. */
        public KeyStore keyStore() {
            try {
                KeyStore ks = KeyStore.getInstance("PKCS12");
                ks.load(null, null);
                List<X509Certificate> chainCerts = certificates(chainPem());
                ks.setKeyEntry("key", privateKey(keyPem(), keyType), STORE_PASSWORD,
                        chainCerts.toArray(new Certificate[0]));
                return ks;
            } catch (GeneralSecurityException | IOException e) {
                throw new IllegalStateException(e);
            }
        }

        @Override
        public String toString() {
            return "Issued[" + commonName + ", " + keyType + ", by " + issuer.commonName + "]";
        }
    }

    public static final char[] STORE_PASSWORD = "changeit".toCharArray();

    /** A certificate authority (root or intermediate). */
    public final class Ca {
        public final String commonName;
        public final Path cert;
        public final Path key;
        public final KeyType keyType;
        /** Null for a root. */
        public final Ca parent;

        Ca(String commonName, Path cert, Path key, KeyType keyType, Ca parent) {
            this.commonName = commonName;
            this.cert = cert;
            this.key = key;
            this.keyType = keyType;
            this.parent = parent;
        }

        /** This CA's certificate (PEM). */
        public String certPem() {
            return read(cert);
        }

        public X509Certificate x509() {
            return certificates(certPem()).get(0);
        }

        /** The intermediates between a leaf issued by this CA and the root, this CA first (empty for a root). */
        String intermediatesPem() {
            StringBuilder sb = new StringBuilder();
            for (Ca c = this; c.parent != null; c = c.parent) {
                sb.append(c.certPem());
            }
            return sb.toString();
        }

        /** An intermediate CA issued by this one. */
        public Ca intermediate(String cn) {
            String base = name(cn);
            Path k = newKey(base, KeyType.EC_P256);
            Path csr = dir.resolve(base + ".csr");
            Path crt = dir.resolve(base + ".crt");
            openssl("req", "-new", "-config", opensslConf.toString(), "-key", k.toString(),
                    "-subj", "/O=kaa-mqtt-it/CN=" + cn, "-out", csr.toString());
            sign(csr, crt, "v3_ca", opensslConf, 3);
            return new Ca(cn, crt, k, KeyType.EC_P256, this);
        }

        /**
         * A server certificate. {@code dnsNames} and {@code ipAddresses} make the subjectAltName; at least one of
         * them must be non-empty.
         */
        public Issued server(String cn, List<String> dnsNames, List<String> ipAddresses) {
            return server(cn, dnsNames, ipAddresses, KeyType.EC_P256);
        }

        public Issued server(String cn, List<String> dnsNames, List<String> ipAddresses, KeyType type) {
            return server(cn, dnsNames, ipAddresses, type, 3);
        }

        /** A server certificate valid for {@code days} from now; 0: until now, so expired a second later. */
        public Issued server(String cn, List<String> dnsNames, List<String> ipAddresses, KeyType type, int days) {
            return leaf(cn, type, serverExtensions(dnsNames, ipAddresses),
                    (csr, crt, ext) -> sign(csr, crt, "leaf", ext, days));
        }

        /**
         * A server certificate for localhost and 127.0.0.1 issued {@code daysAgo} days ago, valid for {@code daysLeft}
         * days more: one whose renewal is due ({@code openssl x509} dates a certificate from now only, so {@code openssl
         * ca} issues it).
         */
        public Issued localhostServerIssued(int daysAgo, int daysLeft) {
            return leaf("localhost", KeyType.EC_P256, serverExtensions(List.of("localhost"), List.of("127.0.0.1")),
                    (csr, crt, ext) -> signDated(csr, crt, ext, daysAgo, daysLeft));
        }

        private List<String> serverExtensions(List<String> dnsNames, List<String> ipAddresses) {
            List<String> san = new ArrayList<>();
            for (String d : dnsNames) {
                san.add("DNS:" + d);
            }
            for (String ip : ipAddresses) {
                san.add("IP:" + ip);
            }
            if (san.isEmpty()) {
                throw new IllegalArgumentException("a server certificate needs at least one subjectAltName");
            }
            return List.of(
                    "basicConstraints = critical, CA:FALSE",
                    "keyUsage = critical, digitalSignature, keyEncipherment",
                    "extendedKeyUsage = serverAuth",
                    "subjectKeyIdentifier = hash",
                    "authorityKeyIdentifier = keyid",
                    "subjectAltName = " + String.join(", ", san));
        }

        /** The usual server certificate for the tests: SAN DNS:localhost and IP:127.0.0.1. */
        public Issued localhostServer() {
            return server("localhost", List.of("localhost"), List.of("127.0.0.1"));
        }

        /** A client certificate (extendedKeyUsage clientAuth) with this common name, valid for longer than the 30 days
         * ahead that the appender warns of its expiry. */
        public Issued client(String cn, KeyType type) {
            return client(cn, type, 90);
        }

        /** A client certificate valid for {@code days} from now; -1: expired a day ago (notAfter before notBefore). */
        public Issued client(String cn, KeyType type, int days) {
            return leaf(cn, type, List.of(
                    "basicConstraints = critical, CA:FALSE",
                    "keyUsage = critical, digitalSignature, keyEncipherment",
                    "extendedKeyUsage = clientAuth",
                    "subjectKeyIdentifier = hash",
                    "authorityKeyIdentifier = keyid"), (csr, crt, ext) -> sign(csr, crt, "leaf", ext, days));
        }

        private Issued leaf(String cn, KeyType type, List<String> extensions, Signer signer) {
            String base = name(cn);
            Path k = newKey(base, type);
            Path csr = dir.resolve(base + ".csr");
            Path crt = dir.resolve(base + ".crt");
            Path ext = dir.resolve(base + ".ext.cnf");
            List<String> lines = new ArrayList<>();
            lines.add("[leaf]");
            lines.addAll(extensions);
            write(ext, String.join("\n", lines) + "\n");
            openssl("req", "-new", "-config", opensslConf.toString(), "-key", k.toString(),
                    "-subj", "/O=kaa-mqtt-it/CN=" + cn, "-out", csr.toString());
            signer.sign(csr, crt, ext);
            Path chain = dir.resolve(base + ".chain.crt");
            write(chain, read(crt) + intermediatesPem());
            return new Issued(cn, type, crt, chain, k, this);
        }

        /**
         * A client certificate as {@code openssl x509 -req} issues it without {@code -extfile}: X.509 v1, no
         * extensions. Mosquitto accepts such client certificates; rustls does not.
         */
        public Issued clientV1(String cn, KeyType type) {
            String base = name(cn);
            Path k = newKey(base, type);
            Path csr = dir.resolve(base + ".csr");
            Path crt = dir.resolve(base + ".crt");
            openssl("req", "-new", "-config", opensslConf.toString(), "-key", k.toString(),
                    "-subj", "/O=kaa-mqtt-it/CN=" + cn, "-out", csr.toString());
            openssl("x509", "-req", "-in", csr.toString(), "-CA", cert.toString(), "-CAkey", key.toString(),
                    "-set_serial", serial(), "-days", "3", "-sha256", "-out", crt.toString());
            Path chain = dir.resolve(base + ".chain.crt");
            write(chain, read(crt) + intermediatesPem());
            return new Issued(cn, type, crt, chain, k, this);
        }

        /** Issues {@code csr} as {@code out}, with the {@code [leaf]} extensions of {@code extFile}. */
        private void signDated(Path csr, Path out, Path extFile, int daysAgo, int daysLeft) {
            Path db = dir.resolve(name("ca-db"));
            try {
                Files.createDirectories(db);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            write(db.resolve("index.txt"), "");
            write(db.resolve("serial"), serial().substring(2) + "\n");
            Path conf = db.resolve("ca.cnf");
            write(conf, String.join("\n", "[ca]", "default_ca = issuing", "[issuing]",
                    "database = " + db.resolve("index.txt"), "new_certs_dir = " + db, "serial = " + db.resolve("serial"),
                    "default_md = sha256", "policy = any", "unique_subject = no", "[any]",
                    "organizationName = optional", "commonName = supplied") + "\n");
            java.time.format.DateTimeFormatter stamp = java.time.format.DateTimeFormatter.ofPattern("yyMMddHHmmss'Z'")
                    .withZone(java.time.ZoneOffset.UTC);
            java.time.Instant now = java.time.Instant.now();
            openssl("ca", "-batch", "-config", conf.toString(), "-cert", cert.toString(), "-keyfile", key.toString(),
                    "-in", csr.toString(), "-out", out.toString(), "-notext", "-extfile", extFile.toString(),
                    "-extensions", "leaf", "-startdate", stamp.format(now.minus(java.time.Duration.ofDays(daysAgo))),
                    "-enddate", stamp.format(now.plus(java.time.Duration.ofDays(daysLeft))));
        }

        private void sign(Path csr, Path out, String section, Path extFile, int days) {
            openssl("x509", "-req", "-in", csr.toString(), "-CA", cert.toString(), "-CAkey", key.toString(),
                    "-set_serial", serial(), "-days", String.valueOf(days), "-sha256", "-extfile", extFile.toString(),
                    "-extensions", section, "-out", out.toString());
        }

        /** An SSLContext whose only trust anchor is this CA (for test clients: Paho, raw JSSE sockets). */
        public SSLContext clientContext() {
            return clientContext(null);
        }

        /** Same, presenting {@code clientCert} (may be null) to servers that ask for one. */
        public SSLContext clientContext(Issued clientCert) {
            try {
                KeyStore trust = KeyStore.getInstance("PKCS12");
                trust.load(null, null);
                trust.setCertificateEntry("ca", x509());
                TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
                tmf.init(trust);
                KeyManagerFactory kmf = null;
                if (clientCert != null) {
                    kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
                    kmf.init(clientCert.keyStore(), STORE_PASSWORD);
                }
                SSLContext ctx = SSLContext.getInstance("TLS");
                ctx.init(kmf == null ? null : kmf.getKeyManagers(), tmf.getTrustManagers(), null);
                return ctx;
            } catch (GeneralSecurityException | IOException e) {
                throw new IllegalStateException(e);
            }
        }

        @Override
        public String toString() {
            return "Ca[" + commonName + (parent != null ? ", under " + parent.commonName : "") + "]";
        }
    }

    /** A JSSE server context presenting {@code server}'s chain (for the TLS proxy). */
    public static SSLContext serverContext(Issued server) {
        try {
            KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(server.keyStore(), STORE_PASSWORD);
            SSLContext ctx = SSLContext.getInstance("TLS");
            ctx.init(kmf.getKeyManagers(), null, null);
            return ctx;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Every certificate in a PEM text. */
    public static List<X509Certificate> certificates(String pem) {
        try {
            CertificateFactory cf = CertificateFactory.getInstance("X.509");
            Collection<? extends Certificate> all =
                    cf.generateCertificates(new ByteArrayInputStream(pem.getBytes(StandardCharsets.US_ASCII)));
            List<X509Certificate> out = new ArrayList<>();
            for (Certificate c : all) {
                out.add((X509Certificate) c);
            }
            return out;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("not PEM certificates: " + e, e);
        }
    }

    /** A PKCS#8 PEM private key ("BEGIN PRIVATE KEY"). */
    public static PrivateKey privateKey(String pkcs8Pem, KeyType type) {
        String body = pemBody(pkcs8Pem, "PRIVATE KEY");
        try {
            KeyFactory kf = KeyFactory.getInstance(type == KeyType.RSA_2048 ? "RSA" : "EC");
            return kf.generatePrivate(new PKCS8EncodedKeySpec(Base64.getMimeDecoder().decode(body)));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The base64 text between "-----BEGIN label-----" and "-----END label-----" (first block). */
    public static String pemBody(String pem, String label) {
        String begin = "-----BEGIN " + label + "-----";
        String end = "-----END " + label + "-----";
        int b = pem.indexOf(begin);
        int e = pem.indexOf(end);
        if (b < 0 || e < b) {
            throw new IllegalArgumentException("no " + label + " PEM block in:\n" + pem);
        }
        return pem.substring(b + begin.length(), e).trim();
    }

    /** Runs openssl verify: true when {@code leaf} chains to {@code root} (intermediates from the leaf's chain). */
    public boolean opensslVerifies(Ca root, Issued leaf, String purpose) {
        Path untrusted = dir.resolve(name("untrusted") + ".pem");
        write(untrusted, leaf.issuer.intermediatesPem());
        List<String> cmd = new ArrayList<>(List.of(OPENSSL, "verify", "-CAfile", root.cert.toString()));
        if (!leaf.issuer.intermediatesPem().isEmpty()) {
            cmd.add("-untrusted");
            cmd.add(untrusted.toString());
        }
        if (purpose != null) {
            cmd.add("-purpose");
            cmd.add(purpose);
        }
        cmd.add(leaf.cert.toString());
        return run(cmd, false).exit == 0;
    }

    @Override
    public void close() {
        if (Boolean.getBoolean("it.keepBrokerDirs")) {
            return;
        }
        TempDirs.delete(dir);
    }

    @Override
    public String toString() {
        return "TestPki[" + dir + "]";
    }

    // ---------------------------------------------------------------------------------------------------------

    /** Issues a certificate request with a leaf's extensions. */
    @FunctionalInterface
    private interface Signer {
        void sign(Path csr, Path out, Path extFile);
    }

    private String name(String cn) {
        return String.format("%02d-", seq.incrementAndGet()) + cn.replaceAll("[^A-Za-z0-9.-]", "_");
    }

    private Path newKey(String base, KeyType type) {
        Path key = dir.resolve(base + ".key");
        if (type == KeyType.RSA_2048) {
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key.toString());
        } else {
            String curve = type == KeyType.EC_P521 ? "P-521" : "P-256";
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:" + curve, "-out", key.toString());
        }
        return key;
    }

    private static String serial() {
        byte[] b = new byte[8];
        RANDOM.nextBytes(b);
        b[0] &= 0x7f;
        b[0] |= 0x01; // positive and never zero
        StringBuilder sb = new StringBuilder("0x");
        for (byte x : b) {
            sb.append(String.format("%02x", x));
        }
        return sb.toString();
    }

    private void openssl(String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(OPENSSL);
        cmd.addAll(List.of(args));
        run(cmd, true);
    }

    private static final class Result {
        final int exit;
        final String output;

        Result(int exit, String output) {
            this.exit = exit;
            this.output = output;
        }
    }

    private Result run(List<String> cmd, boolean check) {
        try {
            Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
            p.getOutputStream().close();
            if (!p.waitFor(30, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IllegalStateException("timed out: " + cmd);
            }
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (check && p.exitValue() != 0) {
                throw new IllegalStateException(cmd + " exited with " + p.exitValue() + ":\n" + out);
            }
            return new Result(p.exitValue(), out);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot run " + cmd, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted: " + cmd, e);
        }
    }

    static String read(Path p) {
        try {
            return new String(Files.readAllBytes(p), StandardCharsets.US_ASCII);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void write(Path p, String text) {
        try {
            Files.write(p, text.getBytes(StandardCharsets.US_ASCII));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
