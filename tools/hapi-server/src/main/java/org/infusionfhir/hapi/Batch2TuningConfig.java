package org.infusionfhir.hapi;

import ca.uhn.fhir.batch2.maintenance.JobMaintenanceServiceImpl;
import org.springframework.beans.factory.config.BeanPostProcessor;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.env.Environment;

/**
 * Batch2 jobs (the engine behind {@code DELETE [type]?...&_expunge=true}, $reindex, bulk export)
 * advance from one step to the next on a "maintenance pass" that HAPI schedules once a minute.
 * On this single-node test server a short interval makes such a job finish in seconds.
 */
@Configuration
public class Batch2TuningConfig {

	@Bean
	public static BeanPostProcessor batch2MaintenanceIntervalTuner(Environment environment) {
		long intervalMillis = environment.getProperty("hapi.batch2.maintenance-interval-ms", Long.class, 5000L);
		return new BeanPostProcessor() {
			@Override
			public Object postProcessBeforeInitialization(Object bean, String beanName) {
				if (bean instanceof JobMaintenanceServiceImpl maintenance) {
					maintenance.setScheduledJobFrequencyMillis(intervalMillis);
				}
				return bean;
			}
		};
	}
}
