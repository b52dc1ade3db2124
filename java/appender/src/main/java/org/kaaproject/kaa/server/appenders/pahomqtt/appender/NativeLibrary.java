package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.CodeSource;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.jar.JarFile;
import java.util.zip.CRC32;
import java.util.zip.CheckedInputStream;
import java.util.zip.ZipEntry;

import org.slf4j.LoggerFactory;

/**
 * Finds and loads the Rust library, once per class loader. A Kaa node starts with
 * {@code java -cp "$LIB/*"} and no {@code java.library.path}, so {@code loadLibrary} alone
 * would never find a {@code .so} dropped beside the jar. Places tried, in order:
 * <ol>
 * <li>the path in system property {@value #PATH_PROPERTY}, if set (then only that);</li>
 * <li>{@value #FILE_NAME} in the directory of the jar holding this class (the Kaa install layout), with a WARN if
 * it is not the copy the jar carries: another build's, left by an upgrade that copied the jar alone; and a WARN
 * with the reason if it is there but does not load, and a place below is used;</li>
 * <li>the copy inside the jar, extracted into a new directory only this user can enter, under
 * {@value #EXTRACT_DIR_PROPERTY} (default {@code java.io.tmpdir}), and deleted as soon as it is loaded;</li>
 * <li>{@code System.loadLibrary("kaa_mqtt_appender")}.</li>
 * </ol>
 */
final class NativeLibrary {

    static final String PATH_PROPERTY = "kaa.mqtt.appender.library";
    static final String EXTRACT_DIR_PROPERTY = "kaa.mqtt.appender.extractDir";
    static final String FILE_NAME = "libkaa_mqtt_appender.so";
    static final String COPY_DIR_PREFIX = "kaa-mqtt-appender-";

    private static String loadedFrom;
    private static String failure;

    private NativeLibrary() {
    }

    /**
     * Loads the library if no earlier call did.
     *
     * @return where it was loaded from
     * @throws UnsatisfiedLinkError naming every place that was tried
     */
    static synchronized String load() {
        if (loadedFrom != null) {
            return loadedFrom;
        }
        if (failure != null) {
            throw new UnsatisfiedLinkError(failure);
        }
        List<String> tried = new ArrayList<>();
        String explicit = System.getProperty(PATH_PROPERTY);
        boolean explicitly = explicit != null && !explicit.isEmpty();
        File beside = explicitly ? null : besideJar();
        boolean loaded = explicitly ? tryLoad(new File(explicit), tried)
                : tryLoad(beside, tried) || tryLoadFromJar(tried) || tryLoadLibrary(tried);
        if (!loaded) {
            failure = "kaa-mqtt-appender native library not loaded; tried: " + String.join("; ", tried)
                    + ". Put " + FILE_NAME + " beside the appender jar, or set -D" + PATH_PROPERTY + "=/path/to/"
                    + FILE_NAME + ", and restart the node: it is tried once per process";
            throw new UnsatisfiedLinkError(failure);
        }
        // Before the interface check, which may refuse what loaded instead: its error names only that.
        if (beside != null && beside.isFile() && !beside.getAbsolutePath().equals(loadedFrom)
                && !tried.get(0).contains("another classloader")) {
            // Another build's whose JNI_OnLoad fails with this jar, or one built for a newer C library: else the
            // file the install put there would be passed over without a word. (Loaded by another class loader of
            // this JVM, it is this build's, and a copy is what this loader can use.)
            LoggerFactory.getLogger(NativeLibrary.class).warn("the library beside the jar could not be loaded; the "
                    + "appender runs {} instead: replace it with the {} of this jar's build (tried: {})", loadedFrom,
                    FILE_NAME, String.join("; ", tried));
        }
        checkAbi();
        if (beside != null && beside.getAbsolutePath().equals(loadedFrom) && !sameAsCarried(ownJar(), beside)) {
            LoggerFactory.getLogger(NativeLibrary.class).warn("{} is not the library this jar was built with (the "
                    + "copy it carries differs): another build's, which runs that build's code; install the jar and "
                    + "{} of one build", loadedFrom, FILE_NAME);
        }
        return loadedFrom;
    }

    /**
     * Whether {@code file} is the copy {@code ownJar} carries, by the size and CRC-32 its entry in the jar records
     * (true when it carries none, or the jar cannot say).
     */
    static boolean sameAsCarried(File ownJar, File file) {
        try (JarFile jar = new JarFile(ownJar)) {
            ZipEntry carried = jar.getEntry(resource().substring(1));
            if (carried == null || carried.getSize() < 0 || carried.getCrc() < 0) {
                return true;
            }
            if (carried.getSize() != file.length()) {
                return false;
            }
            CRC32 crc = new CRC32();
            try (InputStream in = new CheckedInputStream(new FileInputStream(file), crc)) {
                byte[] buffer = new byte[1 << 16];
                while (in.read(buffer) >= 0) {
                    continue; // the stream sums what it reads
                }
            }
            return carried.getCrc() == crc.getValue();
        } catch (IOException | RuntimeException e) {
            return true; // nothing to tell
        }
    }

    /** A library from another build would be called with the wrong arguments: refuse it now. */
    private static void checkAbi() {
        int found;
        try {
            found = NativeAppender.abiVersion();
        } catch (UnsatisfiedLinkError e) {
            found = -1;
        }
        if (found != NativeAppender.ABI_VERSION) {
            failure = "the kaa-mqtt-appender native library loaded from " + loadedFrom + " is from another build "
                    + "(interface " + (found < 0 ? "unknown" : found) + ", this jar needs " + NativeAppender.ABI_VERSION
                    + "): install the jar and " + FILE_NAME + " of the same build, and restart the node";
            loadedFrom = null;
            throw new UnsatisfiedLinkError(failure);
        }
    }

    /** Loads {@code file} if there is one; else notes why not in {@code tried}. */
    private static boolean tryLoad(File file, List<String> tried) {
        if (file == null) {
            return false;
        }
        if (!file.isFile()) {
            tried.add(file + " (no such file)");
            return false;
        }
        try {
            System.load(file.getAbsolutePath());
            loadedFrom = file.getAbsolutePath();
            return true;
        } catch (UnsatisfiedLinkError e) {
            tried.add(file + " (" + e.getMessage() + ")");
            return false;
        }
    }

    private static boolean tryLoadLibrary(List<String> tried) {
        try {
            System.loadLibrary("kaa_mqtt_appender");
            loadedFrom = "java.library.path";
            return true;
        } catch (UnsatisfiedLinkError e) {
            tried.add("java.library.path (" + System.getProperty("java.library.path") + "): " + e.getMessage());
            return false;
        }
    }

    /** Where the Kaa install layout puts the library; null when this class is not in a jar. */
    private static File besideJar() {
        File jar = ownJar();
        return jar == null ? null : new File(jar.getParentFile(), FILE_NAME);
    }

    /** The jar holding this class; null when it is not in one. */
    private static File ownJar() {
        CodeSource source = NativeLibrary.class.getProtectionDomain().getCodeSource();
        URL location = source == null ? null : source.getLocation();
        if (location == null) {
            return null;
        }
        try {
            File jar = new File(location.toURI());
            return jar.isFile() ? jar : null;
        } catch (URISyntaxException | IllegalArgumentException e) {
            return null;
        }
    }

    /** Where the jar carries its copy of the library. */
    static String resource() {
        return "/native/" + platform() + "/" + FILE_NAME;
    }

    private static boolean tryLoadFromJar(List<String> tried) {
        String resource = resource();
        File base = new File(System.getProperty(EXTRACT_DIR_PROPERTY, System.getProperty("java.io.tmpdir")));
        try (InputStream in = NativeLibrary.class.getResourceAsStream(resource)) {
            if (in == null) {
                tried.add("jar resource " + resource + " (not in the jar)");
                return false;
            }
            Path copy = extract(in, base.toPath());
            try {
                if (tryLoad(copy.toFile(), tried)) {
                    loadedFrom = "the jar's " + resource + " (extracted to " + copy + ", deleted once loaded)";
                } else {
                    int last = tried.size() - 1;
                    tried.set(last, tried.get(last) + " (if " + base + " is on a file system mounted noexec, set -D"
                            + EXTRACT_DIR_PROPERTY + " to a directory that allows executables)");
                }
            } finally {
                // A loaded library stays mapped without its file: no copy is left, even by a node that is killed.
                Files.deleteIfExists(copy);
                Files.deleteIfExists(copy.getParent());
            }
        } catch (IOException e) {
            tried.add("jar resource " + resource + " (cannot extract into " + base + ": " + e + "; set -D"
                    + EXTRACT_DIR_PROPERTY + " to a writable directory)");
        }
        return loadedFrom != null;
    }

    /**
     * Copies the library into a new directory under {@code base} that only this user can enter, so no other user
     * can replace it between the copy and the load.
     */
    static Path extract(InputStream in, Path base) throws IOException {
        Files.createDirectories(base);
        boolean posix = base.getFileSystem().supportedFileAttributeViews().contains("posix");
        Path dir = posix
                ? Files.createTempDirectory(base, COPY_DIR_PREFIX,
                        PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")))
                : Files.createTempDirectory(base, COPY_DIR_PREFIX);
        Path copy = dir.resolve(FILE_NAME);
        try {
            Files.copy(in, copy);
            if (posix) {
                Files.setPosixFilePermissions(copy, PosixFilePermissions.fromString("r-x------"));
            }
        } catch (IOException | RuntimeException e) {
            // A full disk leaves no partial copy behind either; the error said is the copy's.
            try {
                Files.deleteIfExists(copy);
                Files.deleteIfExists(dir);
            } catch (IOException | RuntimeException cleanup) {
                e.addSuppressed(cleanup);
            }
            throw e;
        }
        return copy;
    }

    private static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT).replaceAll("[^a-z]", "");
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        if (arch.equals("amd64")) {
            arch = "x86_64";
        }
        return os + "-" + arch;
    }
}
