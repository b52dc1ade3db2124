package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/** The tests' temporary directories: each test removes what it made, or every run leaves more behind. */
final class TempDirs {

    private TempDirs() {
    }

    /** Deletes {@code dir} and all it holds; best effort: a file left behind is no test's failure. */
    static void delete(Path dir) {
        try (Stream<Path> files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
        } catch (IOException | UncheckedIOException e) {
            // best effort
        }
    }
}
