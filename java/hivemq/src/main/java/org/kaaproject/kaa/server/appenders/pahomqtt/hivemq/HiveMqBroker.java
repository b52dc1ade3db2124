package org.kaaproject.kaa.server.appenders.pahomqtt.hivemq;

import java.nio.file.Path;
import java.nio.file.Paths;

import com.hivemq.embedded.EmbeddedExtension;
import com.hivemq.embedded.EmbeddedHiveMQ;
import com.hivemq.extension.sdk.api.ExtensionMain;
import com.hivemq.extension.sdk.api.auth.PublishAuthorizer;
import com.hivemq.extension.sdk.api.auth.SimpleAuthenticator;
import com.hivemq.extension.sdk.api.auth.SubscriptionAuthorizer;
import com.hivemq.extension.sdk.api.auth.parameter.PublishAuthorizerInput;
import com.hivemq.extension.sdk.api.auth.parameter.PublishAuthorizerOutput;
import com.hivemq.extension.sdk.api.auth.parameter.SubscriptionAuthorizerInput;
import com.hivemq.extension.sdk.api.auth.parameter.SubscriptionAuthorizerOutput;
import com.hivemq.extension.sdk.api.events.client.ClientLifecycleEventListener;
import com.hivemq.extension.sdk.api.events.client.parameters.AuthenticationSuccessfulInput;
import com.hivemq.extension.sdk.api.events.client.parameters.ConnectionStartInput;
import com.hivemq.extension.sdk.api.events.client.parameters.DisconnectEventInput;
import com.hivemq.extension.sdk.api.events.client.parameters.ServerInitiatedDisconnectInput;
import com.hivemq.extension.sdk.api.packets.publish.AckReasonCode;
import com.hivemq.extension.sdk.api.parameter.ExtensionStartInput;
import com.hivemq.extension.sdk.api.parameter.ExtensionStartOutput;
import com.hivemq.extension.sdk.api.parameter.ExtensionStopInput;
import com.hivemq.extension.sdk.api.parameter.ExtensionStopOutput;
import com.hivemq.extension.sdk.api.services.Services;

/**
 * HiveMQ CE for one test: {@code HiveMqBroker <home> [denied topic prefix]}, the configuration in
 * {@code <home>/conf/config.xml} (the test writes it). Every client is let in (HiveMQ refuses all without a security
 * extension); a publish to a topic under the denied prefix is refused with reason code 0x87 (not authorised).
 * It prints {@code READY} once its listeners are up, {@code CONNECT <client id>} for each connection and
 * {@code SERVER-DISCONNECT <client id> <reason>} when it closes one, and stops when its standard input ends (the test
 * closed it, or died), so it never outlives the test.
 */
public final class HiveMqBroker {

    private HiveMqBroker() {
    }

    public static void main(String[] args) {
        try {
            run(args);
        } catch (Throwable e) {
            // HiveMQ's threads would keep this JVM alive after a failed start, with nobody reading its output.
            e.printStackTrace();
            Runtime.getRuntime().halt(1);
        }
    }

    private static void run(String[] args) throws Exception {
        Path home = Paths.get(args[0]);
        String denied = args.length > 1 ? args[1] : null;
        EmbeddedExtension extension = EmbeddedExtension.builder()
                .withId("kaa-mqtt-appender-tests")
                .withName("kaa-mqtt-appender tests")
                .withVersion("1")
                .withAuthor("kaa-mqtt-appender")
                .withPriority(0)
                .withStartPriority(0)
                .withExtensionMain(new Extension(denied))
                .build();
        EmbeddedHiveMQ hivemq = EmbeddedHiveMQ.builder()
                .withConfigurationFolder(home.resolve("conf"))
                .withDataFolder(home.resolve("data"))
                .withExtensionsFolder(home.resolve("extensions"))
                .withEmbeddedExtension(extension)
                .build();
        hivemq.start().join();
        System.out.println("READY");
        while (System.in.read() >= 0) {
            // until the test lets go
        }
        hivemq.stop().join();
        System.exit(0);
    }

    private static final class Extension implements ExtensionMain {

        private final String denied;

        Extension(String denied) {
            this.denied = denied;
        }

        @Override
        public void extensionStart(ExtensionStartInput in, ExtensionStartOutput out) {
            Services.securityRegistry().setAuthenticatorProvider(
                    p -> (SimpleAuthenticator) (input, output) -> output.authenticateSuccessfully());
            Services.securityRegistry().setAuthorizerProvider(p -> new Authorizer(denied));
            Services.eventRegistry().setClientLifecycleEventListener(p -> new Lifecycle());
        }

        @Override
        public void extensionStop(ExtensionStopInput in, ExtensionStopOutput out) {
        }
    }

    private static final class Authorizer implements PublishAuthorizer, SubscriptionAuthorizer {

        private final String denied;

        Authorizer(String denied) {
            this.denied = denied;
        }

        @Override
        public void authorizePublish(PublishAuthorizerInput input,
                PublishAuthorizerOutput output) {
            if (denied != null && input.getPublishPacket().getTopic().startsWith(denied)) {
                output.failAuthorization(AckReasonCode.NOT_AUTHORIZED, "denied by the test");
            } else {
                output.authorizeSuccessfully();
            }
        }

        @Override
        public void authorizeSubscribe(SubscriptionAuthorizerInput input,
                SubscriptionAuthorizerOutput output) {
            output.authorizeSuccessfully();
        }
    }

    private static final class Lifecycle implements ClientLifecycleEventListener {

        @Override
        public void onMqttConnectionStart(ConnectionStartInput input) {
            System.out.println("CONNECT " + input.getClientInformation().getClientId());
        }

        @Override
        public void onAuthenticationSuccessful(AuthenticationSuccessfulInput input) {
        }

        @Override
        public void onDisconnect(DisconnectEventInput input) {
        }

        @Override
        public void onServerInitiatedDisconnect(ServerInitiatedDisconnectInput input) {
            System.out.println("SERVER-DISCONNECT " + input.getClientInformation().getClientId() + " "
                    + input.getReasonCode().map(Object::toString).orElse("-") + " "
                    + input.getReasonString().orElse(""));
        }
    }
}
