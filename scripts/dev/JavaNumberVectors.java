import java.util.SplittableRandom;

/**
 * Prints how this JVM's Double.toString / Float.toString render a fixed set of values, one
 * per line: `d <bits hex> <text>` or `f <bits hex> <text>`. Run on a JDK before 19 (whose
 * FloatingDecimal is Java 8's, the Kaa node's) to regenerate src/decode/java_number_vectors.txt:
 *   java scripts/dev/JavaNumberVectors.java [count] > src/decode/java_number_vectors.txt
 */
public class JavaNumberVectors {
    public static void main(String[] args) {
        int count = args.length > 0 ? Integer.parseInt(args[0]) : 1500;
        SplittableRandom random = new SplittableRandom(20261126L);
        double[] doubles = {1e23, 4.72155e20, 2.82879384806159008E17, 1e-3, 9.999e-4, 1e7, 9999999.999, 0.1, 0.3,
            1.0 / 3, 2.0 / 3, 100, 1e21, 1e22, 123456789012345680.0, Double.MIN_VALUE, Double.MIN_NORMAL,
            Double.MAX_VALUE, Math.PI, Math.E, 2e-3, 5e-324, 1e-323, 9.223372036854776E18, 1.0E19, 0.5, 2.5, 1e-5,
            12345.678, 2.0 / 7, 1e-2, 1e6, 999999.99, 0.015};
        for (double d : doubles) {
            print(d);
            print(Math.nextUp(d));
            print(Math.nextDown(d));
        }
        for (int e = -1074; e <= 1023; e++) {
            print(Math.scalb(1.0, e));
        }
        for (int i = 0; i < count; i++) {
            print(Double.longBitsToDouble(random.nextLong() & Long.MAX_VALUE));
            // sensor-like readings and integers, and the doubles either side of them, which are not short
            double reading = random.nextInt(2_000_000) / Math.pow(10, random.nextInt(8));
            print(reading);
            print(Math.nextUp(reading));
            print(Math.nextDown(reading));
            print((double) random.nextLong(1L << 62) / (1L << random.nextInt(62)));
        }
        float[] floats = {Float.MIN_VALUE, Float.MIN_NORMAL, Float.MAX_VALUE, 1e25f, 7.1159495E25f, 0.1f, 1.0f / 3,
            1e-3f, 1e7f, 1.01534304E8f, 16777216f, 16777217f, 3.4e38f};
        for (float f : floats) {
            print(f);
        }
        for (int e = -149; e <= 127; e++) {
            print(Math.scalb(1.0f, e));
        }
        for (int i = 0; i < count; i++) {
            print(Float.intBitsToFloat(random.nextInt() & Integer.MAX_VALUE));
            float reading = random.nextInt(2_000_000) / (float) Math.pow(10, random.nextInt(7));
            print(reading);
            print(Math.nextUp(reading));
            print(Math.nextDown(reading));
        }
    }

    private static void print(double d) {
        System.out.println("d " + Long.toHexString(Double.doubleToRawLongBits(d)) + " " + Double.toString(d));
    }

    private static void print(float f) {
        System.out.println("f " + Integer.toHexString(Float.floatToRawIntBits(f)) + " " + Float.toString(f));
    }
}
