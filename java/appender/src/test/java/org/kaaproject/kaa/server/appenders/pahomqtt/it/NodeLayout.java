package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.MalformedURLException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * The built artefacts the *IT tests install the way a Kaa node has them: the appender jar and .so from
 * {@code mvn package}, and a node's own libraries (the Kaa API, Avro 1.7.5 with its dependencies, slf4j-api and a
 * binding 1.7.7), which the replay module lays out in java/replay/target/lib. Paths come from the failsafe
 * configuration (it.* system properties) or default to the repository layout seen from java/appender.
 */
final class NodeLayout {

    static final String FILE_NAME = "libkaa_mqtt_appender.so";

    private NodeLayout() {
    }

    private static Path path(String property, String fallback) {
        Path p = Paths.get(System.getProperty(property, fallback)).toAbsolutePath().normalize();
        assertTrue(Files.exists(p), p + " (" + property + ") does not exist: run after 'mvn package' (mvn verify)");
        return p;
    }

    /** target/kaa-mqtt-appender-0.1.0.jar */
    static Path appenderJar() {
        return path("it.appenderJar", "../../target/kaa-mqtt-appender-0.1.0.jar");
    }

    /** target/libkaa_mqtt_appender.so, the copy users drop beside the jar. */
    static Path nativeLibrary() {
        return path("it.nativeLibrary", "../../target/" + FILE_NAME);
    }

    /** The replay tool, which plays the node's part in a child JVM. */
    static Path replayJar() {
        return path("it.replayJar", "../replay/target/kaa-mqtt-replay-0.1.0.jar");
    }

    /** What a Kaa node's lib/ holds that the appender needs: kaa-api, avro 1.7.5 and its dependencies, slf4j. */
    static List<Path> nodeLibJars() {
        Path dir = path("it.nodeLibDir", "../replay/target/lib");
        try (Stream<Path> s = Files.list(dir)) {
            List<Path> jars = new ArrayList<>();
            s.filter(p -> p.getFileName().toString().endsWith(".jar")).sorted().forEach(jars::add);
            assertTrue(jars.size() >= 4, "node libraries in " + dir + ": " + jars);
            return jars;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * A class loader that sees what a node's class path holds with the appender installed (the appender jar and
     * the node libraries) and nothing of this test's class path: its parent is the platform class loader.
     */
    static URLClassLoader nodeClassLoader() {
        List<URL> urls = new ArrayList<>();
        try {
            urls.add(appenderJar().toUri().toURL());
            for (Path p : nodeLibJars()) {
                urls.add(p.toUri().toURL());
            }
        } catch (MalformedURLException e) {
            throw new IllegalStateException(e);
        }
        return new URLClassLoader("kaa-node", urls.toArray(new URL[0]), ClassLoader.getPlatformClassLoader());
    }

    /** The file name of the jar or directory a class was loaded from. */
    static String codeSourceFileName(Class<?> c) {
        try {
            return Paths.get(c.getProtectionDomain().getCodeSource().getLocation().toURI()).getFileName().toString();
        } catch (java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static Path codeSource(Class<?> c) {
        try {
            return Paths.get(c.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }
}
