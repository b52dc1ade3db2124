package org.kaaproject.kaa.server.appenders.pahomqtt.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The packaged jar is what a Kaa 0.9.0 node (Java 8, Avro 1.7.5, slf4j 1.7.7 on its class path) can load: Java 8
 * class files only, nothing but the plugins' own classes, their config schemas and the native library (no Avro,
 * slf4j, Kaa API or other dependency classes, which would clash with the node's), and every class, method and field
 * it links to outside the JDK exists in the node's libraries with that exact signature. Also: the tests themselves
 * run against exactly Avro 1.7.5 and slf4j-api 1.7.7, so the references they compute are the node's.
 */
@Timeout(60)
class PackagedJarIT {

    private static final String OWN = "org/kaaproject/kaa/server/appenders/pahomqtt/";
    /** The plugins' config schemas: the legacy one (the original's record) and each generation of the full one. */
    private static final List<String> AVSC = Stream.of(ReleasedPlugin.values())
            .map(p -> ReleasedPlugin.SCHEMA_DIR + p.schemaResource).collect(Collectors.toList());
    private static final String SO = "native/linux-x86_64/" + NodeLayout.FILE_NAME;
    /** What a node has besides the JDK: the Kaa API packages the appender uses, Avro and slf4j. */
    private static final String[] NODE_PACKAGES = {"org/kaaproject/kaa/server/common/", "org/kaaproject/kaa/common/",
        "org/apache/avro/", "org/slf4j/"};

    @Test
    void everyClassInTheJarIsJava8Bytecode() throws IOException {
        Map<String, Integer> versions = new LinkedHashMap<>();
        try (JarFile jar = new JarFile(NodeLayout.appenderJar().toFile())) {
            for (JarEntry e : Collections.list(jar.entries())) {
                if (e.getName().endsWith(".class")) {
                    try (DataInputStream in = new DataInputStream(jar.getInputStream(e))) {
                        assertEquals(0xCAFEBABE, in.readInt(), e.getName() + ": class file magic");
                        int minor = in.readUnsignedShort();
                        int major = in.readUnsignedShort();
                        versions.put(e.getName(), major * 1000 + minor);
                    }
                }
            }
        }
        List<String> plugins = new ArrayList<>(List.of(OWN + "appender/NativeLogAppender.class",
                OWN + "config/BundledSchemaPluginConfig.class"));
        for (ReleasedPlugin p : ReleasedPlugin.values()) {
            plugins.add(ReleasedPlugin.classFile(p.configClass));
            plugins.add(ReleasedPlugin.classFile(p.appenderClass));
        }
        for (String plugin : plugins) {
            assertTrue(versions.containsKey(plugin), plugin + " in " + versions);
        }
        List<String> notJava8 = new ArrayList<>();
        for (Map.Entry<String, Integer> v : versions.entrySet()) {
            if (v.getValue() != 52_000) {
                notJava8.add(v.getKey() + " (" + v.getValue() / 1000 + "." + v.getValue() % 1000 + ")");
            }
        }
        assertEquals(List.of(), notJava8, "class files not of version 52.0 (Java 8) among " + versions.size());
    }

    @Test
    void jarHoldsOnlyThePluginItsSchemaAndItsLibrary() throws IOException {
        List<String> foreign = new ArrayList<>();
        TreeSet<String> names = new TreeSet<>();
        try (JarFile jar = new JarFile(NodeLayout.appenderJar().toFile())) {
            for (JarEntry e : Collections.list(jar.entries())) {
                String n = e.getName();
                names.add(n);
                boolean ok = n.startsWith("META-INF/") && !n.endsWith(".class") && !n.startsWith("META-INF/services/")
                        && !n.startsWith("META-INF/versions/")
                        || e.isDirectory() && (OWN.startsWith(n) || n.startsWith(OWN) || "native/linux-x86_64/"
                                .startsWith(n))
                        || n.startsWith(OWN) && n.endsWith(".class")
                        || AVSC.contains(n) || n.equals(SO);
                if (!ok) {
                    foreign.add(n);
                }
            }
            assertEquals(List.of(), foreign, "entries that are not the plugins' classes, their .avsc, the .so or "
                    + "META-INF (bundled dependencies would clash with the node's own)");
            assertTrue(names.containsAll(AVSC) && names.contains(SO) && names.contains("META-INF/MANIFEST.MF"),
                    "schemas, library and manifest in " + names);
            // The copy inside the jar is the library built with it, the one users put beside the jar.
            try (InputStream in = jar.getInputStream(jar.getEntry(SO))) {
                assertArrayEquals(Files.readAllBytes(NodeLayout.nativeLibrary()), in.readAllBytes(),
                        SO + " in the jar equals " + NodeLayout.nativeLibrary());
            }
        }
    }

    /**
     * Every reference from the jar's class files to a class outside the JDK is to the plugin itself or to the node's
     * Kaa API, Avro 1.7.5 or slf4j 1.7.7, and each such class, method (name and descriptor) and field resolves there:
     * a mismatch would be a NoClassDefFoundError or NoSuchMethodError inside a production node, not a compile error.
     */
    @Test
    void everyLinkOutsideTheJdkResolvesInTheNodeLibraries() throws Exception {
        List<String> problems = new ArrayList<>();
        TreeSet<String> linked = new TreeSet<>();
        try (JarFile jar = new JarFile(NodeLayout.appenderJar().toFile());
                URLClassLoader node = NodeLayout.nodeClassLoader()) {
            for (JarEntry e : Collections.list(jar.entries())) {
                if (!e.getName().endsWith(".class")) {
                    continue;
                }
                ConstantPool cp;
                try (InputStream in = jar.getInputStream(e)) {
                    cp = ConstantPool.read(in.readAllBytes());
                }
                for (String cls : cp.referencedClasses()) {
                    String inner = cls.replaceAll("^\\[+L?|;$", "");
                    if (inner.length() <= 1 || inner.startsWith(OWN) || isJdk(inner)) {
                        continue;
                    }
                    if (!startsWithAny(inner, NODE_PACKAGES)) {
                        problems.add(e.getName() + " refers to " + inner + ", which a Kaa node does not provide");
                    }
                }
                for (ConstantPool.MemberRef m : cp.memberRefs) {
                    if (m.owner.startsWith(OWN) || m.owner.startsWith("[") || isJdk(m.owner)) {
                        continue;
                    }
                    linked.add(m.owner + "." + m.name + m.descriptor);
                    String problem = resolve(node, m);
                    if (problem != null) {
                        problems.add(e.getName() + ": " + problem);
                    }
                }
            }
        }
        System.out.println("member references resolved in the node's libraries: " + String.join("\n  ", linked));
        assertEquals(List.of(), problems, "links the node's libraries cannot satisfy");
        assertTrue(linked.size() > 10, "member references to the Kaa API, Avro and slf4j checked: " + linked);
    }

    /**
     * A JDK class (java.*, javax.management, ...): the compiler's {@code --release 8} already holds those to the Java 8
     * API, so only their presence in the JDK is asked here.
     */
    private static boolean isJdk(String internalName) {
        try {
            Class.forName(internalName.replace('/', '.'), false, ClassLoader.getPlatformClassLoader());
            return true;
        } catch (ClassNotFoundException | LinkageError e) {
            return false;
        }
    }

    private static boolean startsWithAny(String s, String[] prefixes) {
        for (String p : prefixes) {
            if (s.startsWith(p)) {
                return true;
            }
        }
        return false;
    }

    /** Null if the member exists in the node's class of that name (or a supertype), else what is wrong. */
    private static String resolve(ClassLoader node, ConstantPool.MemberRef m) {
        Class<?> owner;
        try {
            owner = Class.forName(m.owner.replace('/', '.'), false, node);
        } catch (ClassNotFoundException | LinkageError e) {
            return "class " + m.owner + " is not in the node's libraries (" + e + ")";
        }
        if (m.kind == ConstantPool.FIELD) {
            for (Class<?> c = owner; c != null; c = c.getSuperclass()) {
                for (Field f : c.getDeclaredFields()) {
                    if (f.getName().equals(m.name) && descriptor(f.getType()).equals(m.descriptor)) {
                        return null;
                    }
                }
            }
            return "no field " + m.owner + "." + m.name + " " + m.descriptor + " in the node's libraries";
        }
        List<Class<?>> todo = new ArrayList<>();
        todo.add(owner);
        todo.add(Object.class);
        for (int i = 0; i < todo.size(); i++) {
            Class<?> c = todo.get(i);
            if (m.name.equals("<init>")) {
                for (Constructor<?> k : c.getDeclaredConstructors()) {
                    if (descriptor(k.getParameterTypes(), void.class).equals(m.descriptor)) {
                        return null;
                    }
                }
                return "no constructor " + m.owner + m.descriptor + " in the node's libraries";
            }
            for (Method method : c.getDeclaredMethods()) {
                if (method.getName().equals(m.name)
                        && descriptor(method.getParameterTypes(), method.getReturnType()).equals(m.descriptor)) {
                    return null;
                }
            }
            if (c.getSuperclass() != null) {
                todo.add(c.getSuperclass());
            }
            Collections.addAll(todo, c.getInterfaces());
        }
        return "no method " + m.owner + "." + m.name + m.descriptor + " in the node's libraries";
    }

    private static String descriptor(Class<?>[] params, Class<?> ret) {
        StringBuilder sb = new StringBuilder("(");
        for (Class<?> p : params) {
            sb.append(descriptor(p));
        }
        return sb.append(')').append(descriptor(ret)).toString();
    }

    private static String descriptor(Class<?> c) {
        if (c.isArray()) {
            return c.getName().replace('.', '/');
        }
        if (c.isPrimitive()) {
            switch (c.getName()) {
                case "void": return "V";
                case "boolean": return "Z";
                case "byte": return "B";
                case "char": return "C";
                case "short": return "S";
                case "int": return "I";
                case "long": return "J";
                case "float": return "F";
                case "double": return "D";
                default: throw new IllegalArgumentException(c.getName());
            }
        }
        return "L" + c.getName().replace('.', '/') + ";";
    }

    /** The parts of a class file's constant pool that name other classes and their members (JVMS 4.4). */
    static final class ConstantPool {
        static final int FIELD = 9;

        static final class MemberRef {
            final int kind;
            final String owner;
            final String name;
            final String descriptor;

            MemberRef(int kind, String owner, String name, String descriptor) {
                this.kind = kind;
                this.owner = owner;
                this.name = name;
                this.descriptor = descriptor;
            }
        }

        final List<String> classNames = new ArrayList<>();
        /** Every UTF-8 constant: names, descriptors, signatures, string literals. */
        final List<String> descriptors = new ArrayList<>();
        final List<MemberRef> memberRefs = new ArrayList<>();

        static ConstantPool read(byte[] classFile) throws IOException {
            DataInputStream in = new DataInputStream(new ByteArrayInputStream(classFile));
            in.readInt();
            in.readUnsignedShort();
            in.readUnsignedShort();
            int count = in.readUnsignedShort();
            int[] tags = new int[count];
            String[] utf8 = new String[count];
            int[] a = new int[count];
            int[] b = new int[count];
            for (int i = 1; i < count; i++) {
                int tag = in.readUnsignedByte();
                tags[i] = tag;
                switch (tag) {
                    case 1:
                        utf8[i] = in.readUTF();
                        break;
                    case 3:
                    case 4:
                        in.readInt();
                        break;
                    case 5:
                    case 6:
                        in.readLong();
                        i++;
                        break;
                    case 7:
                    case 8:
                    case 16:
                    case 19:
                    case 20:
                        a[i] = in.readUnsignedShort();
                        break;
                    case 9:
                    case 10:
                    case 11:
                    case 12:
                    case 17:
                    case 18:
                        a[i] = in.readUnsignedShort();
                        b[i] = in.readUnsignedShort();
                        break;
                    case 15:
                        in.readUnsignedByte();
                        a[i] = in.readUnsignedShort();
                        break;
                    default:
                        throw new IOException("unknown constant pool tag " + tag + " at " + i);
                }
            }
            ConstantPool cp = new ConstantPool();
            for (int i = 1; i < count; i++) {
                switch (tags[i]) {
                    case 7:
                        cp.classNames.add(utf8[a[i]]);
                        break;
                    case 1:
                        cp.descriptors.add(utf8[i]);
                        break;
                    case 9:
                    case 10:
                    case 11:
                        int nat = b[i];
                        cp.memberRefs.add(new MemberRef(tags[i], utf8[a[a[i]]], utf8[a[nat]], utf8[b[nat]]));
                        break;
                    default:
                        break;
                }
            }
            return cp;
        }

        /**
         * Class names from Class constants and from every descriptor or signature among the UTF-8 constants (those of
         * the class's own fields and methods included): anything of the form Lpackage/Name;.
         */
        List<String> referencedClasses() {
            List<String> out = new ArrayList<>(classNames);
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("L([\\w$]+(?:/[\\w$]+)+)[;<]").matcher(
                    String.join(" ", descriptors));
            while (m.find()) {
                out.add(m.group(1));
            }
            return out;
        }
    }

    // ------------------------------------------------------------------------------------------------ class path

    /**
     * The class path the tests (and their Avro reference texts) run on resolves exactly Avro 1.7.5 and slf4j-api
     * 1.7.7, each from one jar, with one slf4j binding: no other version hides behind a transitive dependency.
     */
    @Test
    void testClassPathHasExactlyAvro175AndSlf4j177() throws IOException {
        ClassLoader cl = PackagedJarIT.class.getClassLoader();
        assertOnlyIn(cl, "org/apache/avro/Schema.class", "avro-1.7.5.jar");
        assertOnlyIn(cl, "org/apache/avro/io/JsonEncoder.class", "avro-1.7.5.jar");
        assertOnlyIn(cl, "org/slf4j/Logger.class", "slf4j-api-1.7.7.jar");
        assertOnlyIn(cl, "org/slf4j/LoggerFactory.class", "slf4j-api-1.7.7.jar");
        assertOnlyIn(cl, "org/slf4j/impl/StaticLoggerBinder.class", "slf4j-simple-1.7.7.jar");
        assertOnlyIn(cl, "org/codehaus/jackson/JsonGenerator.class", "jackson-core-asl-1.9.13.jar");
        assertEquals("avro-1.7.5.jar", NodeLayout.codeSourceFileName(org.apache.avro.Schema.class));
        assertEquals("slf4j-api-1.7.7.jar", NodeLayout.codeSourceFileName(org.slf4j.LoggerFactory.class));
        assertEquals("1.7.5", pomVersion(cl, "org.apache.avro/avro"));
        assertEquals("1.7.7", pomVersion(cl, "org.slf4j/slf4j-api"));
        assertEquals("kaa-api-0.1.0.jar", NodeLayout.codeSourceFileName(
                org.kaaproject.kaa.server.common.log.shared.appender.LogAppender.class),
                "the Kaa API comes from its own jar, never from the appender's");
    }

    private static void assertOnlyIn(ClassLoader cl, String resource, String jarName) throws IOException {
        List<String> where = new ArrayList<>();
        for (Enumeration<URL> e = cl.getResources(resource); e.hasMoreElements();) {
            where.add(e.nextElement().toString());
        }
        if (where.size() != 1 || !where.get(0).contains("/" + jarName + "!/")) {
            fail(resource + " must come from " + jarName + " alone; found in " + where);
        }
    }

    private static String pomVersion(ClassLoader cl, String groupArtifact) throws IOException {
        List<String> versions = new ArrayList<>();
        for (Enumeration<URL> e = cl.getResources("META-INF/maven/" + groupArtifact + "/pom.properties");
                e.hasMoreElements();) {
            Properties p = new Properties();
            try (InputStream in = e.nextElement().openStream()) {
                p.load(in);
            }
            versions.add(p.getProperty("version"));
        }
        assertEquals(1, versions.size(), groupArtifact + " versions on the class path: " + versions);
        return versions.get(0);
    }
}
