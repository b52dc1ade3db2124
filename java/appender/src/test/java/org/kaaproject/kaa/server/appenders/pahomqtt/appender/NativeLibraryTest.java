package org.kaaproject.kaa.server.appenders.pahomqtt.appender;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The copy of the library the jar carries is extracted where no other user can swap it before it is loaded
 * (a world-writable java.io.tmpdir is the default). That it is deleted once loaded is shown by
 * {@code InstallLayoutIT}, with the node's start command, as is the WARN for a library beside the jar that is not
 * the copy it carries; here, what tells the two apart.
 */
class NativeLibraryTest {

    @TempDir
    Path base;

    @Test
    void extractedCopyIsOwnerOnlyInADirectoryOfItsOwn() throws IOException {
        byte[] library = {0x7f, 'E', 'L', 'F', 1, 2, 3};
        Path copy = NativeLibrary.extract(new ByteArrayInputStream(library), base);
        assertArrayEquals(library, Files.readAllBytes(copy));
        assertEquals(NativeLibrary.FILE_NAME, copy.getFileName().toString());
        Path dir = copy.getParent();
        assertEquals(base, dir.getParent());
        assertTrue(dir.getFileName().toString().startsWith(NativeLibrary.COPY_DIR_PREFIX), dir.toString());
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(dir)),
                "only the node's user can enter or write the directory");
        assertEquals("r-x------", PosixFilePermissions.toString(Files.getPosixFilePermissions(copy)),
                "nobody can write the copy, nor another user read it");
        Path second = NativeLibrary.extract(new ByteArrayInputStream(library), base);
        assertFalse(second.getParent().equals(dir), "every load its own directory");
    }

    @Test
    void aLibraryBesideTheJarIsTheCarriedCopyOnlyWithItsBytes() throws IOException {
        byte[] carried = {0x7f, 'E', 'L', 'F', 1, 2, 3};
        Path jar = base.resolve("appender.jar");
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar))) {
            out.putNextEntry(new JarEntry(NativeLibrary.resource().substring(1)));
            out.write(carried);
        }
        Path beside = base.resolve(NativeLibrary.FILE_NAME);
        Files.write(beside, carried);
        assertTrue(NativeLibrary.sameAsCarried(jar.toFile(), beside.toFile()), "the same bytes");
        Files.write(beside, new byte[] {0x7f, 'E', 'L', 'F', 1, 2, 4});
        assertFalse(NativeLibrary.sameAsCarried(jar.toFile(), beside.toFile()), "one byte other, the same size");
        Files.write(beside, new byte[] {0x7f, 'E', 'L', 'F', 1, 2, 3, 0});
        assertFalse(NativeLibrary.sameAsCarried(jar.toFile(), beside.toFile()), "one byte more");
    }
}
